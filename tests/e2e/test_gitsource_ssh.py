"""GitSource over SSH: a private key and known_hosts from a Secret, against a real OpenSSH
server (Debian's openssh-server, tests/e2e/tools/apt-packages-gitsync.txt) started on a
loopback port for this module, serving the git server's bare repositories.

Proves: a key the server accepts and the right host key sync; a wrong host key in
known_hosts is refused (StrictHostKeyChecking), and the condition says so; a Secret with a
key but no known_hosts is refused before anything connects.
"""

from __future__ import annotations

import base64
import getpass
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.fixtures import processes
from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.gitserver import GitServer
from tests.e2e.fixtures.operator import Operator
from tests.e2e.test_gitsource import PIPELINE, Repo, applied, condition, create_source, wait_source

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass(frozen=True)
class SSHServer:
    port: int
    user: str
    client_key: bytes  # private key the server accepts
    known_hosts: bytes  # the server's host key, as a known_hosts line
    wrong_known_hosts: bytes  # some other host key for the same address
    log: Path

    def url(self, repo_path: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repo_path}"


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    if not Path(SSHD).exists():
        pytest.skip("sshd is not installed (openssh-server)")
    work = tmp_path_factory.mktemp("sshd")
    for name in ("host", "client", "other"):
        _keygen(work / name)
    (work / "authorized_keys").write_bytes((work / "client.pub").read_bytes())
    port = processes.free_port()
    config = work / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {work / 'host'}",
                f"AuthorizedKeysFile {work / 'authorized_keys'}",
                f"PidFile {work / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "UsePAM no",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory sshd wants
    log = (work / "sshd.log").open("wb")
    server = subprocess.Popen(
        processes.die_with_parent([SSHD, "-D", "-e", "-f", str(config)]),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        processes_wait_port(port, server)
        host_key = (work / "host.pub").read_text().split()
        other_key = (work / "other.pub").read_text().split()
        address = f"[127.0.0.1]:{port}"
        yield SSHServer(
            port=port,
            user=getpass.getuser(),
            client_key=(work / "client").read_bytes(),
            known_hosts=f"{address} {host_key[0]} {host_key[1]}\n".encode(),
            wrong_known_hosts=f"{address} {other_key[0]} {other_key[1]}\n".encode(),
            log=work / "sshd.log",
        )
    finally:
        processes.terminate_group(server, 10)
        log.close()


def processes_wait_port(port: int, server: subprocess.Popen[bytes]) -> None:
    import socket  # noqa: PLC0415
    import time  # noqa: PLC0415

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("sshd exited at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("sshd did not listen")


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"gitssh-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def ssh_secret(cluster: Cluster, namespace: str, name: str, data: dict[str, bytes]) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))


def test_ssh_with_identity_and_known_hosts(
    cluster: Cluster,
    operator: Operator,
    git_server: GitServer,
    ssh_server: SSHServer,
    namespace: str,
) -> None:
    repo = Repo(git_server, f"{namespace}-ssh")
    sha = repo.push(pipelines__a_yaml=PIPELINE.format(name="a", word="over-ssh"))
    url = ssh_server.url(repo.remote.path)

    ssh_secret(
        cluster,
        namespace,
        "ssh-good",
        {"identity": ssh_server.client_key, "known_hosts": ssh_server.known_hosts},
    )
    create_source(cluster, namespace, url, name="good", secretRef={"name": "ssh-good"})
    source = wait_source(cluster, namespace, applied(sha), operator, "good")
    assert condition(source, "Ready")["status"] == "True"
    assert "Accepted publickey" in ssh_server.log.read_text()  # it really went over SSH

    ssh_secret(
        cluster,
        namespace,
        "ssh-wrong-host",
        {"identity": ssh_server.client_key, "known_hosts": ssh_server.wrong_known_hosts},
    )
    create_source(cluster, namespace, url, name="spoofed", secretRef={"name": "ssh-wrong-host"})
    source = wait_source(
        cluster,
        namespace,
        lambda s: condition(s, "Ready").get("status") == "False",
        operator,
        "spoofed",
    )
    ready = condition(source, "Ready")
    assert ready["reason"] == "HostKeyVerificationFailed", ready
    assert "BEGIN OPENSSH PRIVATE KEY" not in json.dumps(source)

    ssh_secret(cluster, namespace, "ssh-no-hosts", {"identity": ssh_server.client_key})
    create_source(cluster, namespace, url, name="unchecked", secretRef={"name": "ssh-no-hosts"})
    source = wait_source(
        cluster,
        namespace,
        lambda s: condition(s, "Ready").get("status") == "False",
        operator,
        "unchecked",
    )
    ready = condition(source, "Ready")
    assert ready["reason"] == "InvalidSecret" and "known_hosts" in ready["message"], ready
