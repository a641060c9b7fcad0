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
kept in memory keyed by the token's SHA-256; tokens are never logged. The caches are LRUs,
and tokens the API server refused have their own, smaller one: a flood of junk tokens
can neither grow memory nor push out the tokens of the people using the UI.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pipesync.api import model
from pipesync.ui.cache import Lru

TOKEN_TTL = 60.0
ACCESS_TTL = 30.0
#: How long the login cookie lives in the browser (the token's own expiry still applies).
SESSION_TTL = 8 * 3600
MAX_CACHED_TOKENS = 10_000
#: Refused tokens remembered (so a retry loop with a bad token costs no review each time).
MAX_REJECTED_TOKENS = 1_000
MAX_CACHED_DECISIONS = 100_000
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
        self._tokens: Lru[str, Principal] = Lru(MAX_CACHED_TOKENS)
        self._rejected: Lru[str, None] = Lru(MAX_REJECTED_TOKENS)
        self._decisions: Lru[tuple[str, Access], bool] = Lru(MAX_CACHED_DECISIONS)
        self._self: Principal | None = None

    # --- authentication ------------------------------------------------------------------

    def principal_for_token(self, token: str) -> Principal | None:
        key = _digest(token)
        now = self.clock()
        found, principal = self._tokens.get(key, now)
        if found:
            return principal
        if self._rejected.get(key, now)[0]:
            return None
        user = self.reviews.token_review(token)
        if user is None or not user.get("username"):
            self._rejected.put(key, None, now + TOKEN_TTL)
            return None
        principal = Principal(
            str(user["username"]), tuple(user.get("groups") or ()), dict(user), key
        )
        self._tokens.put(key, principal, now + TOKEN_TTL)
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
        stores the token itself in an HttpOnly cookie, see sessions.py)."""
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
        found, cached = self._decisions.get(key, now)
        if found and cached is not None:
            return cached
        decision = self.reviews.access_review(principal.user, access.attributes())
        self._decisions.put(key, decision, now + ACCESS_TTL)
        return decision
