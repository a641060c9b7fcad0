"""Who is asking, and whether the request may be answered at all: the HTTP side of auth.

auth.Authenticator decides who a token belongs to and what they may do; this module reads
the token from the request (an `Authorization: Bearer` header or the login cookie), sets
and clears that cookie, and refuses requests no person meant to send:

- a write (POST) without the `X-Pipesync-Request` header, which a cross-site form cannot
  set (the login too: a cross-site form must not log a browser in as someone else);
- under `pipesync ui` (the kubeconfig's identity, no login), a Host header that does not
  name this server, so a page that re-binds its DNS name to 127.0.0.1 cannot act as the
  kubeconfig's user, and a write whose Origin is another site.
"""

from __future__ import annotations

import http.cookies
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from pipesync.ui import PREFIX, inputs
from pipesync.ui.auth import COOKIE, SESSION_TTL, Access, Authenticator, Principal
from pipesync.ui.responses import HttpError, Response, Route, json_response

#: Bearer tokens (JWTs and the like); anything else could not travel in a cookie.
TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,16384}")
#: The header every write must carry (see the module's docstring).
REQUEST_HEADER = "HTTP_X_PIPESYNC_REQUEST"


def local_hosts(host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host header values a browser sends to a server bound to (host, port): the
    loopback names and the bound address, with the port (and without it on port 80)."""
    names = {"localhost", "127.0.0.1", "[::1]", *extra}
    if host and host not in ("0.0.0.0", "::"):  # noqa: S104 - a name, not a bind
        names.add(f"[{host}]" if ":" in host else host)
    found = {f"{name.lower()}:{port}" for name in names}
    if port == 80:
        found |= {name.lower() for name in names}
    return frozenset(found)


class Sessions:
    """The request checks and the login, logout and whoami endpoints."""

    def __init__(self, authenticator: Authenticator, hosts: Collection[str] | None) -> None:
        """`hosts`: the Host header values accepted (None: any, as behind an ingress)."""
        self.auth = authenticator
        self.hosts = None if hosts is None else frozenset(h.lower() for h in hosts)

    def routes(self) -> list[Route]:
        return [
            Route("GET", re.compile(r"^whoami$"), self.whoami),
            Route("POST", re.compile(r"^login$"), self.login, anonymous=True),
            Route("POST", re.compile(r"^logout$"), self.logout),
        ]

    # --- before any handler ------------------------------------------------------------

    def check_origin(self, environ: Mapping[str, Any], method: str) -> None:
        """With `hosts` set (pipesync ui): the Host must be this server, and a write's
        Origin, when the browser sends one, must be this server too. A DNS-rebinding page
        is same-origin by its own name, so only the Host it sends gives it away."""
        if self.hosts is None:
            return
        host = str(environ.get("HTTP_HOST") or "").lower()
        if host not in self.hosts:
            raise HttpError(
                403,
                f"Host {host[:100]!r} is not this server's address (DNS rebinding?): "
                "open the UI at the address pipesync ui printed",
            )
        origin = environ.get("HTTP_ORIGIN")
        if method != "GET" and origin is not None:
            parts = urlsplit(str(origin))
            if parts.scheme not in ("http", "https") or parts.netloc.lower() not in self.hosts:
                raise HttpError(403, f"Origin {str(origin)[:100]!r} is not this server")

    @staticmethod
    def check_write(environ: Mapping[str, Any], method: str) -> None:
        """A POST must carry the request header (see the module's docstring)."""
        if method == "POST" and environ.get(REQUEST_HEADER) != "1":
            raise HttpError(403, "missing X-Pipesync-Request header (cross-site request?)")

    # --- who ---------------------------------------------------------------------------

    @staticmethod
    def _session(environ: Mapping[str, Any]) -> str:
        cookie = http.cookies.SimpleCookie()
        try:
            cookie.load(environ.get("HTTP_COOKIE", ""))
        except http.cookies.CookieError:
            return ""
        morsel = cookie.get(COOKIE)
        return morsel.value if morsel is not None else ""

    def principal(self, environ: Mapping[str, Any]) -> Principal:
        principal = self.auth.authenticate(
            str(environ.get("HTTP_AUTHORIZATION", "")), self._session(environ)
        )
        if principal is None:
            raise HttpError(401, "log in: no valid token or session")
        return principal

    def allowed(self, principal: Principal, access: Access) -> bool:
        return self.auth.allowed(principal, access)

    def require(self, principal: Principal, access: Access) -> None:
        if not self.auth.allowed(principal, access):
            what = access.resource + (f"/{access.subresource}" if access.subresource else "")
            where = f" in namespace {access.namespace}" if access.namespace else ""
            raise HttpError(403, f"{principal.username} may not {access.verb} {what}{where}")

    # --- the endpoints -----------------------------------------------------------------

    def whoami(self, environ: Mapping[str, Any], principal: Principal) -> Response:
        return json_response(200, {"user": principal.public(), "auth": self.auth.mode})

    def login(self, environ: Mapping[str, Any]) -> Response:
        """The one endpoint without a principal: it makes one from the posted token and
        keeps the token in an HttpOnly cookie (auth.py says why the token itself)."""
        if self.auth.mode != "token":
            raise HttpError(400, "this UI uses the kubeconfig's identity; no login needed")
        body = inputs.read_json(environ)
        try:
            token = str(body["token"]).strip()
        except (KeyError, TypeError):
            raise HttpError(400, 'expected JSON {"token": "..."}') from None
        if not TOKEN.fullmatch(token):
            raise HttpError(400, "that is not a bearer token (unexpected characters)")
        principal = self.auth.login(token)
        if principal is None:
            raise HttpError(401, "the API server did not accept this token")
        https = "https" in (environ.get("HTTP_X_FORWARDED_PROTO"), environ.get("wsgi.url_scheme"))
        secure = "; Secure" if https else ""
        cookie = (
            f"{COOKIE}={token}; Path={PREFIX}; Max-Age={SESSION_TTL}; HttpOnly; "
            f"SameSite=Strict{secure}"
        )
        return json_response(200, {"user": principal.public()}, [("Set-Cookie", cookie)])

    def logout(self, environ: Mapping[str, Any], principal: Principal) -> Response:
        cookie = f"{COOKIE}=; Path={PREFIX}; HttpOnly; SameSite=Strict; Max-Age=0"
        return Response(204, b"", "text/plain", [("Set-Cookie", cookie)])
