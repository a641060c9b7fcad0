"""gitops.fetch: the bare mirror (clone once, then fetch) against real local
repositories, and the credential handling: nothing secret in URLs, arguments, files
others can read, or messages."""

from __future__ import annotations

import os
import socket
import stat
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from pipesync.gitops import fetch
from tests.unit.gitrepos import GitRepo


@pytest.fixture
def origin(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "origin")
    repo.write("pipelines/a.yaml", "a: 1\n")
    repo.commit("first")
    return repo


def url(repo: GitRepo) -> str:
    return repo.root.as_uri()


def test_clone_once_then_fetch_follows_the_branch(origin: GitRepo, tmp_path: Path) -> None:
    mirror = tmp_path / "cache" / "ns" / "src"
    first = fetch.fetch(mirror, url(origin), fetch.Ref(branch="main"))
    assert first.commit == origin.git("rev-parse", "HEAD")
    assert first.repo.bare and (mirror / "HEAD").is_file()
    assert stat.S_IMODE(mirror.stat().st_mode) == 0o700
    origin.write("pipelines/b.yaml", "b: 1\n")
    second_sha = origin.commit("second\n\npipesync: allow-mass-deletion")
    second = fetch.fetch(mirror, url(origin), fetch.Ref(branch="main"))
    assert second.commit == second_sha
    assert "allow-mass-deletion" in second.message
    assert fetch.is_ancestor(second.repo, first.commit, second.commit) is True


def test_force_push_is_fetched_and_detected(origin: GitRepo, tmp_path: Path) -> None:
    mirror = tmp_path / "m"
    origin.write("x.txt", "1")
    old = origin.commit("to be rewritten")
    fetch.fetch(mirror, url(origin), fetch.Ref(branch="main"))
    origin.git("reset", "-q", "--hard", "HEAD~1")
    origin.write("y.txt", "2")
    new = origin.commit("rewritten")
    fetched = fetch.fetch(mirror, url(origin), fetch.Ref(branch="main"))
    assert fetched.commit == new
    assert fetch.is_ancestor(fetched.repo, old, new) is False
    assert fetch.is_ancestor(fetched.repo, "0" * 40, new) is None


def test_tags_and_commits(origin: GitRepo, tmp_path: Path) -> None:
    tagged = origin.git("rev-parse", "HEAD")
    origin.git("tag", "-a", "v1", "-m", "release")
    origin.write("later.txt", "x")
    origin.commit("later")
    assert fetch.fetch(tmp_path / "t", url(origin), fetch.Ref(tag="v1")).commit == tagged
    short = fetch.fetch(tmp_path / "c", url(origin), fetch.Ref(commit=tagged[:10]))
    assert short.commit == tagged
    # A pinned commit already in the mirror needs no remote at all.
    gone = fetch.fetch(tmp_path / "c", "file:///nonexistent/repo", fetch.Ref(commit=tagged))
    assert gone.commit == tagged


def test_missing_branch_and_unreachable_remote(origin: GitRepo, tmp_path: Path) -> None:
    with pytest.raises(fetch.FetchError) as missing:
        fetch.fetch(tmp_path / "m", url(origin), fetch.Ref(branch="nope"))
    assert missing.value.reason == "RevisionNotFound"
    with pytest.raises(fetch.FetchError) as unreachable:
        fetch.fetch(tmp_path / "u", "file:///nonexistent/repo.git", fetch.Ref(branch="main"))
    assert unreachable.value.reason == "FetchFailed"
    assert "nonexistent" in str(unreachable.value)


def test_a_hanging_remote_times_out(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    try:
        with pytest.raises(fetch.FetchError) as error:
            fetch.fetch(
                tmp_path / "m",
                f"git://127.0.0.1:{port}/r.git",
                fetch.Ref(branch="main"),
                None,
                timeout=1.0,
            )
        assert error.value.reason == "FetchTimeout"
        assert "timed out" in str(error.value) or "Timeout" in str(error.value)
    finally:
        for conn in accepted:
            conn.close()
        listener.close()


def test_command_transports_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(fetch.FetchError):
        fetch.fetch(tmp_path / "m", f"ext::sh -c touch% {marker}", fetch.Ref(branch="main"))
    assert not marker.exists()


def test_mirror_path_takes_only_kubernetes_names(tmp_path: Path) -> None:
    assert fetch.mirror_path("ns", "src", tmp_path) == tmp_path / "ns" / "src"
    for bad in ("..", "a/b", "", "-x", "A"):
        with pytest.raises(fetch.FetchError):
            fetch.mirror_path(bad, "src", tmp_path)


def test_archive_holds_the_whole_tree(origin: GitRepo, tmp_path: Path) -> None:
    origin.write("steps/train.py", "print(1)\n")
    sha = origin.commit("code")
    fetched = fetch.fetch(tmp_path / "m", url(origin), fetch.Ref(branch="main"))
    target = tmp_path / "tree.tar.gz"
    fetch.archive(fetched.repo, sha, target)
    with tarfile.open(target, "r:gz") as tar:
        assert {"pipelines/a.yaml", "steps/train.py"} <= set(tar.getnames())


# --- credentials -------------------------------------------------------------------------


def test_credentials_from_a_secret() -> None:
    basic = fetch.Credentials.from_secret("s", {"username": b"u", "password": b"p4ss-word\n"})
    assert (basic.username, basic.password) == ("u", "p4ss-word")
    assert "p4ss" not in repr(basic)
    token = fetch.Credentials.from_secret("s", {"bearerToken": b"tok-123456"})
    assert token.bearer_token == "tok-123456"
    ssh = fetch.Credentials.from_secret("s", {"identity": b"KEY", "known_hosts": b"h k"})
    assert ssh.identity == b"KEY"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"password": b"x"}, "password without username"),
        ({"identity": b"KEY"}, "known_hosts"),
        ({"other": b"x"}, "holds none"),
        ({"username": b"\xff"}, "not UTF-8"),
    ],
)
def test_bad_secrets_are_named(data: dict[str, bytes], says: str) -> None:
    with pytest.raises(fetch.FetchError) as error:
        fetch.Credentials.from_secret("git-creds", data)
    assert says in str(error.value) and "git-creds" in str(error.value)
    assert error.value.reason == "InvalidSecret"


def test_scrub_removes_userinfo_headers_and_secret_values() -> None:
    credentials = fetch.Credentials(username="alice", password="s3cret-pw")
    text = (
        "fatal: https://alice:s3cret-pw@git.example/r.git: 401; "
        "header Authorization: Basic YWxpY2U6czNjcmV0LXB3; also s3cret-pw and "
        + fetch._basic("alice", "s3cret-pw")
    )
    cleaned = fetch.scrub(text, credentials.secrets())
    assert "s3cret-pw" not in cleaned
    assert "YWxpY2U6czNjcmV0LXB3" not in cleaned
    assert "https://***@git.example/r.git" in cleaned
    assert fetch.display_url("ssh://git:tok@host/r") == "ssh://***@host/r"
    assert fetch.display_url("https://host/r.git") == "https://host/r.git"


def test_a_failing_fetch_never_shows_credentials(tmp_path: Path) -> None:
    credentials = fetch.Credentials(username="alice", password="very-secret-pw")
    with pytest.raises(fetch.FetchError) as error:
        fetch.fetch(
            tmp_path / "m",
            "http://bob:url-secret@127.0.0.1:9/r.git",
            fetch.Ref(branch="main"),
            credentials,
            timeout=10.0,
        )
    message = str(error.value)
    assert "very-secret-pw" not in message and "url-secret" not in message
    assert fetch._basic("alice", "very-secret-pw") not in message


def test_http_credentials_travel_in_the_environment_only() -> None:
    credentials = fetch.Credentials(bearer_token="tok-abcdef")
    with fetch._environment(credentials) as env:
        pairs = {
            env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"]
            for i in range(int(env["GIT_CONFIG_COUNT"]))
        }
    assert pairs["http.extraHeader"] == "Authorization: Bearer tok-abcdef"
    assert pairs["http.followRedirects"] == "false"
    assert env["GIT_ALLOW_PROTOCOL"] == fetch.allowed_protocols()
    assert env["GIT_TERMINAL_PROMPT"] == "0"


def test_ssh_key_and_known_hosts_are_private_and_removed() -> None:
    credentials = fetch.Credentials(identity=b"-----KEY-----", known_hosts=b"host ssh-ed25519 AAAA")
    with fetch._environment(credentials) as env:
        command = env["GIT_SSH_COMMAND"]
        for option in ("StrictHostKeyChecking=yes", "IdentitiesOnly=yes", "BatchMode=yes"):
            assert option in command
        key = Path(command.split(" -i ")[1].strip())
        hosts = Path(command.split("UserKnownHostsFile=")[1].split()[0])
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE(hosts.stat().st_mode) == 0o600
        assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
        assert key.read_bytes() == b"-----KEY-----\n"
        assert b"-----KEY-----" not in command.encode()
    assert not key.exists() and not key.parent.exists()


def test_refs_are_checked() -> None:
    assert fetch.Ref.from_spec(None).branch == "main"
    assert fetch.Ref.from_spec({"tag": "v1"}).revision("ab") == "v1@sha1:ab"
    assert fetch.Ref.from_spec({"commit": "abcdef1"}).revision("ab") == "sha1:ab"
    for bad in ({"branch": "--upload-pack=x"}, {"branch": "a..b"}, {"branch": "a", "tag": "b"}):
        with pytest.raises(fetch.FetchError):
            fetch.Ref.from_spec(bad)


@pytest.fixture(autouse=True)
def _no_user_git_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    yield


def test_messages_since_the_last_applied_commit(origin: GitRepo, tmp_path: Path) -> None:
    applied = origin.git("rev-parse", "HEAD")
    origin.write("b.txt", "1")
    origin.commit("drop things\n\npipesync: allow-mass-deletion")
    origin.write("c.txt", "1")
    head = origin.commit("later fix")
    fetched = fetch.fetch(tmp_path / "m", url(origin), fetch.Ref(branch="main"))
    between = fetch.messages_since(fetched.repo, applied, head)
    assert "allow-mass-deletion" in between and "later fix" in between
    assert "first" not in between  # the applied commit itself is not in the range
    assert fetch.messages_since(fetched.repo, None, head).strip() == "later fix"
    assert fetch.messages_since(fetched.repo, "0" * 40, head).strip() == "later fix"


def test_file_urls_may_not_read_the_mirror_cache(origin: GitRepo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fetch.fetch(cache / "team-a" / "src", url(origin), fetch.Ref(branch="main"))
    with pytest.raises(fetch.FetchError) as error:
        fetch.fetch(
            cache / "team-b" / "thief",
            (cache / "team-a" / "src").as_uri(),
            fetch.Ref(branch="main"),
            cache=cache,
        )
    assert error.value.reason == "ProtocolNotAllowed"


def test_the_operator_can_narrow_the_transports(
    origin: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPESYNC_GIT_PROTOCOLS", "https:ssh:ext")
    assert fetch.allowed_protocols() == "https:ssh"  # never more than the built-in list
    with pytest.raises(fetch.FetchError) as error:
        fetch.fetch(tmp_path / "m", url(origin), fetch.Ref(branch="main"))
    assert error.value.reason == "ProtocolNotAllowed" and "file://" in str(error.value)
    with fetch._environment(None) as env:
        assert env["GIT_ALLOW_PROTOCOL"] == "https:ssh"


def test_a_local_path_is_the_file_transport_and_may_not_read_the_mirror_cache(
    origin: GitRepo, tmp_path: Path
) -> None:
    """git reads `/srv/repo` (no scheme, no `host:`) from this machine, as it does
    `file:///srv/repo`: the same rules apply, the cache's included."""
    cache = tmp_path / "cache"
    fetch.fetch(cache / "team-a" / "src", url(origin), fetch.Ref(branch="main"))
    with pytest.raises(fetch.FetchError) as error:
        fetch.fetch(
            cache / "team-b" / "thief",
            str(cache / "team-a" / "src"),
            fetch.Ref(branch="main"),
            cache=cache,
        )
    assert error.value.reason == "ProtocolNotAllowed"
    assert "local path" in str(error.value)


def test_a_cluster_without_file_refuses_local_paths_before_running_git(
    origin: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPESYNC_GIT_PROTOCOLS", "http:https:ssh:git")  # the chart's default
    for local in (str(origin.root), f"{origin.root}/../{origin.root.name}", "./repo"):
        with pytest.raises(fetch.FetchError) as error:
            fetch.fetch(tmp_path / "m", local, fetch.Ref(branch="main"))
        assert error.value.reason == "ProtocolNotAllowed", local
        assert "a local path (file) is not allowed" in str(error.value)
    assert fetch.url_transport("git@example.com:ml/repo.git") == "ssh"
    assert fetch.url_transport("example.com:ml/repo") == "ssh"
    assert fetch.url_transport("./host:path") == "file"  # a slash before the colon


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        # A temporary path or a commit id holding "403" is not an HTTP refusal.
        (
            "fatal: '/tmp/pytest-403/popen-gw0/remote.git' does not appear to be a git "
            "repository\nfatal: Could not read from remote repository.",
            "FetchFailed",
        ),
        ("fatal: couldn't find remote ref main401", "RevisionNotFound"),
        (
            "fatal: unable to access 'https://h/r.git/': The requested URL returned error: 403",
            "AuthenticationFailed",
        ),
        ("fatal: Authentication failed for 'https://h/r.git/'", "AuthenticationFailed"),
        ("git@h: Permission denied (publickey).", "AuthenticationFailed"),
    ],
)
def test_a_fetch_failure_is_named_from_gits_wording_only(stderr: str, reason: str) -> None:
    error = git.GitCommandError(["git", "fetch"], 128, stderr.encode())
    assert fetch._reason(error) == reason
