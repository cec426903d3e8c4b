"""The page shell at `/` (public) and the one-time hand-over of the token to a cookie."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from juqueue.api.auth import cookie_name, token_matches

router = APIRouter(include_in_schema=False)


def _shell() -> str:
    return files("juqueue.api").joinpath("static", "index.html").read_text(encoding="utf-8")


@router.get("/")
def index(request: Request, token: str | None = None) -> Response:
    """`/?token=T` sets the HttpOnly cookie and redirects, so the token leaves the address bar (to
    `./`: behind a proxy's path prefix the page stays under it)."""
    if token is None:
        return HTMLResponse(_shell(), headers={"Cache-Control": "no-store"})
    ctx = request.app.state.ctx
    resp = RedirectResponse("./", status_code=303, headers={"Cache-Control": "no-store"})
    if token_matches(token, ctx.token):
        resp.set_cookie(cookie_name(ctx.port), ctx.token, httponly=True, samesite="strict", path="/")
    return resp
