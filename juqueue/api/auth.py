"""The API's token check and its CSRF rule.

Loopback is not private on a shared login node, and `reload` runs the user's Python
definitions, so every non-public path asks for the token, from any address.

The dashboard's cookie is SameSite=Strict, but a site is not an origin: a page another user
serves on another port of the same host is same-site, so the browser sends the cookie with
its cross-origin `fetch(..., {mode: "no-cors", credentials: "include"})`. A state-changing
request therefore needs the token in a header (which such a page cannot set), or an `Origin`
equal to the server's own; the cookie alone only reads.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import HTTPException, Request, status
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_HEADER = "X-JuQueue-Token"
PUBLIC_PATHS = frozenset({"/", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/health"})
PUBLIC_PREFIXES = ("/static/",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

log = logging.getLogger(__name__)


def cookie_name(port: int) -> str:
    """Named after the port: two servers on one host must not overwrite each other's cookie."""
    return f"juqueue_token_{port}"


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing does not leak the token."""
    if not given or not expected:
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


def header_token(request: HTTPConnection) -> str | None:
    """The token from `Authorization: Bearer` or the X-JuQueue-Token header: a cross-origin page
    cannot set either without a CORS preflight, which this server never grants."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    header = request.headers.get(TOKEN_HEADER)
    if header:
        return header.strip()
    return None


def presented_token(request: HTTPConnection, port: int) -> str | None:
    """The token from `Authorization: Bearer`, the X-JuQueue-Token header, or the port's cookie."""
    return header_token(request) or request.cookies.get(cookie_name(port))


def own_origin(request: HTTPConnection) -> str | None:
    """`scheme://host[:port]` as the request reached the server (its Host header), so an SSH
    tunnel's `localhost:9000` is the dashboard's origin too; None without a Host header."""
    host = request.headers.get("host", "").strip()
    if not host:
        return None
    scheme = {"ws": "http", "wss": "https"}.get(request.scope.get("scheme", "http"), request.scope.get("scheme", "http"))
    return f"{scheme}://{host}".lower()


def is_state_changing(scope: Scope) -> bool:
    """Every method but GET/HEAD/OPTIONS, and WebSocket handshakes (browsers send those cross-origin
    with the cookie too)."""
    return scope["type"] == "websocket" or scope.get("method", "GET").upper() not in SAFE_METHODS


def csrf_refusal(request: HTTPConnection) -> str | None:
    """Why a request already carrying the right token must still be refused, or None.

    A state-changing request needs the token in a header, or an `Origin` exactly equal to the
    server's own origin (browsers send `Origin` with every non-GET request, same-origin ones
    included, so the dashboard's own `fetch` passes). Origin `null`, another port, or no
    Origin at all with only the cookie is refused.
    """
    if not is_state_changing(request.scope) or header_token(request):
        return None
    origin = request.headers.get("origin")
    expected = own_origin(request)
    if origin is not None and expected is not None and origin.strip().lower() == expected:
        return None
    method = request.scope.get("method", "WEBSOCKET")
    log.warning("refused %s %s: token only in the cookie and Origin %r is not %r (CSRF protection)",
                method, request.scope.get("path"), origin, expected)
    return CSRF_REFUSED


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


UNAUTHORIZED = ("missing or wrong token: send 'Authorization: Bearer <token>' (the token is in the work dir's "
                "'token' file; `juqueue url` prints a dashboard link)")

CSRF_REFUSED = ("state-changing requests need the token in a header ('Authorization: Bearer <token>' or "
                "'X-JuQueue-Token') or a same-origin Origin; the cookie alone is not enough (CSRF protection)")


def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries the server's token, 403 if a
    state-changing request carries it only in the cookie from another origin."""
    ctx = request.app.state.ctx
    if not token_matches(presented_token(request, ctx.port), ctx.token):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
    refusal = csrf_refusal(request)
    if refusal:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=refusal)


class TokenGuard:
    """The same checks before routing, so no path outside the public ones (unknown ones
    included) answers anything but 401 without the token, or 403 to a cookie-only
    cross-origin write: FastAPI parses a request body before it runs dependencies, which
    would let a malformed body answer 422 first."""

    def __init__(self, app: ASGIApp, token: str, port: int) -> None:
        self.app, self.token, self.port = app, token, port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not is_public(scope["path"]):
            conn = HTTPConnection(scope)
            if not token_matches(presented_token(conn, self.port), self.token):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                resp = JSONResponse({"detail": UNAUTHORIZED}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await resp(scope, receive, send)
                return
            refusal = csrf_refusal(conn)
            if refusal:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await JSONResponse({"detail": refusal}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)
