"""Bring one GitSource's revision into a local bare mirror: clone once, then fetch.

Why a bare mirror per source in the operator's cache: a sync must read a commit's tree
(gitops.snapshot) and archive it for task pods without checking anything out, and a
fetch of a few new commits is far cheaper than a clone per sync. Nothing of the
repository ever runs (no checkout, no hooks, no submodules, no `ext::` transport).

Credentials never touch the URL, the command line, a config file or a message:
- HTTPS `username`+`password` or `bearerToken` become an `Authorization` header handed
  to that one git call through GIT_CONFIG_COUNT/KEY/VALUE environment variables
  (`http.extraHeader`), with redirects off so the header cannot follow a redirect to
  another host;
- SSH `identity` (+ required `known_hosts`) are written 0600 into a private temporary
  directory that is removed after the call; ssh runs with StrictHostKeyChecking=yes,
  IdentitiesOnly=yes, BatchMode=yes and no user config.
Every message that leaves this module goes through `scrub`, which removes URL
userinfo and every secret value.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import re
import shlex
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path

import git

#: The transports a GitSource may use; `ext::` (runs a command) and friends are refused.
#: PIPESYNC_GIT_PROTOCOLS narrows them (e.g. "https:ssh" in a shared cluster: file:// and
#: local paths read the operator's own disk); the Helm chart leaves `file` out unless
#: `git.allowLocalUrls` is set.
ALLOWED_PROTOCOLS = "http:https:ssh:git:file"
DEFAULT_TIMEOUT_SECONDS = 60.0
_SAFE_SEGMENT = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_AUTH_HEADER = re.compile(r"(?i)(authorization:\s*)(basic|bearer)?\s*\S+")


class FetchError(Exception):
    """A fetch that failed; `reason` is a condition reason, the message is scrubbed."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Ref:
    """Exactly one of branch, tag or commit (spec.ref)."""

    branch: str | None = None
    tag: str | None = None
    commit: str | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, object] | None) -> Ref:
        data = dict(spec or {"branch": "main"})
        ref = cls(
            branch=_text(data.get("branch")),
            tag=_text(data.get("tag")),
            commit=_text(data.get("commit")),
        )
        if sum(x is not None for x in (ref.branch, ref.tag, ref.commit)) != 1:
            raise FetchError("InvalidRef", "spec.ref: give exactly one of branch, tag or commit")
        for value in (ref.branch, ref.tag):
            if value is not None and (value.startswith("-") or not _valid_ref_name(value)):
                raise FetchError("InvalidRef", f"spec.ref: {value!r} is not a valid ref name")
        return ref

    @property
    def label(self) -> str:
        """The name shown in revisions: `main@sha1:...`, `v1.2@sha1:...`, `sha1:...`."""
        return self.branch or self.tag or ""

    def revision(self, sha: str) -> str:
        return f"{self.label}@sha1:{sha}" if self.label else f"sha1:{sha}"


@dataclasses.dataclass(frozen=True)
class Credentials:
    """What a secretRef's Secret holds; repr never shows a value."""

    username: str | None = dataclasses.field(default=None, repr=False)
    password: str | None = dataclasses.field(default=None, repr=False)
    bearer_token: str | None = dataclasses.field(default=None, repr=False)
    identity: bytes | None = dataclasses.field(default=None, repr=False)
    known_hosts: bytes | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def from_secret(cls, name: str, data: Mapping[str, bytes]) -> Credentials:
        def text(key: str) -> str | None:
            value = data.get(key)
            if value is None:
                return None
            try:
                return value.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise FetchError(
                    "InvalidSecret", f"Secret {name!r}: key {key!r} is not UTF-8 text"
                ) from None

        found = cls(
            username=text("username"),
            password=text("password"),
            bearer_token=text("bearerToken"),
            identity=data.get("identity"),
            known_hosts=data.get("known_hosts"),
        )
        if found.password is not None and found.username is None:
            raise FetchError("InvalidSecret", f"Secret {name!r}: password without username")
        if found.identity is not None and not found.known_hosts:
            raise FetchError(
                "InvalidSecret",
                f"Secret {name!r}: identity needs known_hosts (host keys are always checked)",
            )
        if not any((found.username, found.bearer_token, found.identity)):
            raise FetchError(
                "InvalidSecret",
                f"Secret {name!r} holds none of username/password, bearerToken or "
                "identity/known_hosts",
            )
        return found

    def secrets(self) -> list[str]:
        """Every value that must never appear in a message (also as base64)."""
        values: list[str] = []
        for value in (self.password, self.bearer_token):
            if value:
                values.append(value)
        if self.username and self.password:
            values.append(_basic(self.username, self.password))
        if self.identity:
            values.extend(
                line for line in self.identity.decode("utf-8", "replace").splitlines() if line
            )
        return values


def scrub(text: str, secrets: list[str] | None = None) -> str:
    """The text without URL userinfo, Authorization headers or any of `secrets`."""
    cleaned = _USERINFO.sub(r"\g<scheme>***@", text)
    cleaned = _AUTH_HEADER.sub(r"\1***", cleaned)
    for secret in sorted(secrets or [], key=len, reverse=True):
        if len(secret) >= 4:
            cleaned = cleaned.replace(secret, "***")
    return cleaned


def display_url(url: str) -> str:
    """The URL as it may be shown (status, logs): no userinfo."""
    return scrub(url)


def allowed_protocols() -> str:
    wanted = os.environ.get("PIPESYNC_GIT_PROTOCOLS", ALLOWED_PROTOCOLS).split(":")
    known = ALLOWED_PROTOCOLS.split(":")
    return ":".join(p for p in wanted if p in known) or "none"


def url_transport(url: str) -> str:
    """The transport git will use for `url`, by git's own rules (urlmatch / transport.c):
    `scheme://...`; else scp-like `[user@]host:path` (a colon before any slash) is ssh;
    anything else is a path on this machine, which git reads as `file`."""
    if "://" in url:
        return url.split("://", 1)[0].lower()
    colon, slash = url.find(":"), url.find("/")
    if colon > 0 and (slash == -1 or colon < slash):
        return "ssh"
    return "file"


def check_url(url: str, cache: Path | None) -> None:
    """Refuses a transport the operator does not allow, and a file:// URL or local path
    into the mirror cache (another source's mirror holds what its credentials fetched)."""
    scheme = url_transport(url)
    allowed = allowed_protocols().split(":")
    if scheme not in allowed:
        shown = "a local path (file)" if scheme == "file" and "://" not in url else f"{scheme}://"
        raise FetchError(
            "ProtocolNotAllowed",
            f"spec.url: {shown} is not allowed by this operator "
            f"(PIPESYNC_GIT_PROTOCOLS={allowed_protocols()})",
        )
    if scheme == "file" and cache is not None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(url).path) if "://" in url else url
        target = Path(path).resolve()
        cache = cache.resolve()
        if target == cache or cache in target.parents:
            raise FetchError(
                "ProtocolNotAllowed",
                "spec.url: file:// or a local path may not point into the mirror cache",
            )


def cache_root() -> Path:
    return Path(os.environ.get("PIPESYNC_CACHE") or Path(tempfile.gettempdir()) / "pipesync-git")


def mirror_path(namespace: str, name: str, root: Path | None = None) -> Path:
    """<cache>/<namespace>/<source>; both are Kubernetes names, checked again here."""
    for segment in (namespace, name):
        if not _SAFE_SEGMENT.match(segment):
            raise FetchError("InvalidName", f"{segment!r} is not a Kubernetes object name")
    return (root or cache_root()) / namespace / name


@dataclasses.dataclass(frozen=True)
class Fetched:
    repo: git.Repo
    commit: str  # full sha of the ref's commit
    message: str  # its commit message (trailers such as allow-mass-deletion)


def fetch(
    path: Path,
    url: str,
    ref: Ref,
    credentials: Credentials | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    cache: Path | None = None,
) -> Fetched:
    """Fetches `ref` from `url` into the bare mirror at `path` (created on first use)
    and resolves it to a commit. Raises FetchError with a scrubbed message. The caller
    closes `Fetched.repo` when done with it. `cache`: the root of every source's mirror,
    which a file:// URL may not point into."""
    check_url(url, cache)
    repo = _open_mirror(path)
    try:
        return _fetch(repo, url, ref, credentials, timeout)
    except BaseException:
        repo.close()
        raise


def _fetch(
    repo: git.Repo, url: str, ref: Ref, credentials: Credentials | None, timeout: float
) -> Fetched:
    secrets = credentials.secrets() if credentials else []
    refspecs: list[str]
    if ref.branch is not None:
        local = f"refs/heads/{ref.branch}"
        refspecs = [f"+refs/heads/{ref.branch}:{local}"]
    elif ref.tag is not None:
        local = f"refs/tags/{ref.tag}"
        refspecs = [f"+refs/tags/{ref.tag}:{local}"]
    else:
        local = ""
        refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
    wanted = ref.commit
    if wanted is not None and _has_commit(repo, wanted):
        commit = repo.commit(wanted)  # a pinned commit never changes: no network at all
        return Fetched(repo, commit.hexsha, str(commit.message))
    with _environment(credentials) as env:
        try:
            repo.git.execute(
                [
                    "git",
                    "-c",
                    "protocol.version=2",
                    "fetch",
                    "--no-tags",
                    "--prune",
                    "--no-recurse-submodules",
                    "--quiet",
                    "--end-of-options",
                    url,
                    *refspecs,
                ],
                env=env,
                kill_after_timeout=timeout,
                with_extended_output=False,
            )
        except git.GitCommandError as error:
            raise FetchError(_reason(error), _message(error, url, secrets)) from None
    target = wanted if wanted is not None else local
    if not _has_commit(repo, target):
        what = f"commit {wanted}" if wanted is not None else f"{local}"
        raise FetchError("RevisionNotFound", f"{what} is not in {display_url(url)}")
    commit = repo.commit(target)
    return Fetched(repo, commit.hexsha, str(commit.message))


def is_ancestor(repo: git.Repo, older: str, newer: str) -> bool | None:
    """Whether `older` is in `newer`'s history; None when `older` is no longer known
    (e.g. pruned after a force-push and a fresh cache)."""
    if not _has_commit(repo, older):
        return None
    try:
        return bool(repo.is_ancestor(repo.commit(older), repo.commit(newer)))
    except git.GitCommandError:
        return None


def messages_since(repo: git.Repo, older: str | None, newer: str, limit: int = 200) -> str:
    """The messages of the commits after `older` up to `newer` (only `newer`'s when `older`
    is unknown or not an ancestor), newest first: a trailer in any of them counts."""
    head = repo.commit(newer)
    if not older or is_ancestor(repo, older, newer) is not True:
        return str(head.message)
    found = [str(c.message) for c in repo.iter_commits(f"{older}..{newer}", max_count=limit)]
    return "\n".join(found) or str(head.message)


def archive(repo: git.Repo, commit: str, destination: Path) -> None:
    """The whole tree at `commit` as tar.gz (what task pods unpack as their workspace)."""
    with destination.open("wb") as out:
        repo.archive(out, commit, format="tar.gz")


def remove_mirror(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# --- internals -----------------------------------------------------------------------------


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _valid_ref_name(name: str) -> bool:
    bad = ("..", "@{", "\\", " ", "~", "^", ":", "?", "*", "[", "//")
    return not any(b in name for b in bad) and not name.endswith((".", "/", ".lock"))


def _basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def _open_mirror(path: Path) -> git.Repo:
    if (path / "HEAD").is_file():
        try:
            return git.Repo(path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            shutil.rmtree(path, ignore_errors=True)  # a half-made mirror: start again
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return git.Repo.init(path, bare=True)


def _has_commit(repo: git.Repo, rev: str) -> bool:
    if not rev:
        return False
    try:
        repo.commit(rev).tree  # noqa: B018 -- objects load lazily
    except (git.BadName, git.BadObject, ValueError, IndexError, TypeError):
        return False
    return True


@contextlib.contextmanager
def _environment(credentials: Credentials | None) -> Iterator[dict[str, str]]:
    """The environment of one git call: no user/system config, no prompts, only the
    allowed transports, and the credentials (removed again when the call is done)."""
    env = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_ALLOW_PROTOCOL": allowed_protocols(),
        "GIT_SSH_COMMAND": "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes",
    }
    config: list[tuple[str, str]] = []
    private: str | None = None
    try:
        if credentials is not None:
            header = None
            if credentials.bearer_token:
                header = f"Authorization: Bearer {credentials.bearer_token}"
            elif credentials.username is not None:
                basic = _basic(credentials.username, credentials.password or "")
                header = f"Authorization: Basic {basic}"
            if header is not None:
                config += [("http.extraHeader", header), ("http.followRedirects", "false")]
            if credentials.identity is not None:
                private = tempfile.mkdtemp(prefix="pipesync-ssh-")
                os.chmod(private, 0o700)
                key_file, hosts = Path(private) / "identity", Path(private) / "known_hosts"
                _write_private(key_file, _with_newline(credentials.identity))
                _write_private(hosts, _with_newline(credentials.known_hosts or b""))
                env["GIT_SSH_COMMAND"] = " ".join(
                    [
                        "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes",
                        "-o StrictHostKeyChecking=yes",
                        f"-o UserKnownHostsFile={shlex.quote(str(hosts))}",
                        f"-i {shlex.quote(str(key_file))}",
                    ]
                )
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        yield env
    finally:
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)


def _with_newline(data: bytes) -> bytes:
    # OpenSSH refuses a private key whose last line lacks its newline.
    data = data.replace(b"\r\n", b"\n")
    return data if data.endswith(b"\n") else data + b"\n"


#: What git prints when a server refuses the credentials (or their absence).
_AUTH_MARKERS = (
    "authentication failed",
    "could not read username",
    "permission denied",
    "invalid credentials",
)
#: An HTTP 401/403 as git reports it. Only in git's own wording: a bare "403" also
#: matches a temporary path or a commit id in the same message.
_HTTP_DENIED = re.compile(r"(returned error|http(/[\d.]+)?|status( code)?):? 40[13]\b")


def _reason(error: git.GitCommandError) -> str:
    text = str(error.stderr or "").lower()
    if error.status is None or "timeout" in text or "kill_after_timeout" in str(error).lower():
        return "FetchTimeout"
    if any(marker in text for marker in _AUTH_MARKERS) or _HTTP_DENIED.search(text):
        return "AuthenticationFailed"
    if "host key verification failed" in text:
        return "HostKeyVerificationFailed"
    if "couldn't find remote ref" in text:
        return "RevisionNotFound"
    return "FetchFailed"


def _message(error: git.GitCommandError, url: str, secrets: list[str]) -> str:
    lines = [
        line.strip()
        for line in str(error.stderr or "").replace("stderr:", "").splitlines()
        if line.strip().strip("'")
    ]
    detail = "; ".join(line.strip("'").strip() for line in lines)[-600:] or "no output"
    if error.status is None or "kill_after_timeout" in str(error):
        detail = f"timed out ({detail})"
    return scrub(f"git fetch {display_url(url)} failed: {detail}", secrets)
