"""The API's token check.

Loopback is not private on a shared login node, and `reload` runs the user's Python
definitions, so every non-public path asks for the token, from any address.
"""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request, status
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_HEADER = "X-JuQueue-Token"
PUBLIC_PATHS = frozenset({"/", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/health"})
PUBLIC_PREFIXES = ("/static/",)


def cookie_name(port: int) -> str:
    """Named after the port: two servers on one host must not overwrite each other's cookie."""
    return f"juqueue_token_{port}"


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing does not leak the token."""
    if not given or not expected:
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


def presented_token(request: HTTPConnection, port: int) -> str | None:
    """The token from `Authorization: Bearer`, the X-JuQueue-Token header, or the port's cookie."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    header = request.headers.get(TOKEN_HEADER)
    if header:
        return header.strip()
    return request.cookies.get(cookie_name(port))


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


UNAUTHORIZED = ("missing or wrong token: send 'Authorization: Bearer <token>' (the token is in the work dir's "
                "'token' file; `juqueue url` prints a dashboard link)")


def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries the server's token."""
    ctx = request.app.state.ctx
    if not token_matches(presented_token(request, ctx.port), ctx.token):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})


class TokenGuard:
    """The same check before routing, so no path outside the public ones (unknown ones
    included) answers anything but 401 without the token: FastAPI parses a request body
    before it runs dependencies, which would let a malformed body answer 422 first."""

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
        await self.app(scope, receive, send)
