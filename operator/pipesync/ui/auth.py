"""Who is using the UI, and what they may see: TokenReview and SubjectAccessReview.

Why not the operator's own rights: the operator can read every namespace it watches and
every S3 record; the UI must show each person only what Kubernetes RBAC lets *them* see.
So a request carries the person's bearer token (a header from an authenticating proxy or
a script, or the HttpOnly cookie the login page sets, which holds the token itself), the
token is checked with TokenReview, and every namespace and resource is checked with
SubjectAccessReview.

Why the cookie holds the token and not a session id: the chart runs two replicas behind
one Service, and any replica must accept any request; there is no session to share.

Decisions are cached briefly (a page polls every 2 s and must not cost two reviews per
poll); a revoked RoleBinding takes effect within ACCESS_TTL seconds. Review results are
kept in memory keyed by the token's SHA-256; tokens are never logged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pipesync.api import model

TOKEN_TTL = 60.0
ACCESS_TTL = 30.0
#: How long the login cookie lives in the browser (the token's own expiry still applies).
SESSION_TTL = 8 * 3600
MAX_CACHED_TOKENS = 10_000
COOKIE = "pipesync_session"


class Reviews(Protocol):
    """The part of controllers.kube.Kube used here."""

    def token_review(self, token: str) -> dict[str, Any] | None: ...

    def self_subject_review(self) -> dict[str, Any]: ...

    def access_review(
        self, user: Mapping[str, Any] | None, attributes: Mapping[str, str]
    ) -> bool: ...


@dataclasses.dataclass(frozen=True)
class Principal:
    """An authenticated person. `user` None means "this process's own kubeconfig"."""

    username: str
    groups: tuple[str, ...]
    user: Mapping[str, Any] | None
    key: str  # identifies the principal in caches (token digest or "kubeconfig")

    def public(self) -> dict[str, Any]:
        return {"username": self.username, "groups": list(self.groups)}


@dataclasses.dataclass(frozen=True)
class Access:
    verb: str
    resource: str
    namespace: str = ""
    subresource: str = ""
    group: str = model.GROUP
    name: str = ""

    def attributes(self) -> dict[str, str]:
        return {
            "verb": self.verb,
            "group": self.group,
            "resource": self.resource,
            "subresource": self.subresource,
            "namespace": self.namespace,
            "name": self.name,
        }


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    """mode "token": bearer tokens and login sessions; mode "kubeconfig": everyone is the
    kubeconfig's identity (pipesync ui on a laptop, bound to localhost)."""

    def __init__(
        self, reviews: Reviews, mode: str = "token", clock: Callable[[], float] = time.monotonic
    ) -> None:
        if mode not in ("token", "kubeconfig"):
            raise ValueError(f"unknown auth mode {mode!r}: expected token or kubeconfig")
        self.reviews = reviews
        self.mode = mode
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[float, Principal | None]] = {}
        self._decisions: dict[tuple[str, Access], tuple[float, bool]] = {}
        self._self: Principal | None = None

    # --- authentication ------------------------------------------------------------------

    def principal_for_token(self, token: str) -> Principal | None:
        key = _digest(token)
        now = self.clock()
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        user = self.reviews.token_review(token)
        principal = None
        if user is not None and user.get("username"):
            principal = Principal(
                str(user["username"]), tuple(user.get("groups") or ()), dict(user), key
            )
        with self._lock:
            if len(self._tokens) > MAX_CACHED_TOKENS:
                self._tokens.clear()
            self._tokens[key] = (now + TOKEN_TTL, principal)
        return principal

    def kubeconfig_principal(self) -> Principal:
        if self._self is None:
            me = self.reviews.self_subject_review()
            self._self = Principal(
                str(me.get("username") or "kubeconfig"),
                tuple(me.get("groups") or ()),
                None,
                "kubeconfig",
            )
        return self._self

    def login(self, token: str) -> Principal | None:
        """Who a token belongs to, when the API server accepts it (the login page then
        stores the token itself in an HttpOnly cookie, see app.py)."""
        return self.principal_for_token(token)

    def authenticate(self, authorization: str, cookie: str) -> Principal | None:
        """From an `Authorization: Bearer` header, else the login cookie's token."""
        if self.mode == "kubeconfig":
            return self.kubeconfig_principal()
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self.principal_for_token(token.strip())
        if cookie:
            return self.principal_for_token(cookie)
        return None

    # --- authorisation -------------------------------------------------------------------

    def allowed(self, principal: Principal, access: Access) -> bool:
        key = (principal.key, access)
        now = self.clock()
        with self._lock:
            cached = self._decisions.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        decision = self.reviews.access_review(principal.user, access.attributes())
        with self._lock:
            if len(self._decisions) > 100_000:
                self._decisions.clear()
            self._decisions[key] = (now + ACCESS_TTL, decision)
        return decision
