"""The FastAPI app, built around a context the server hands in (nothing runs at import)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from juqueue.api.auth import TokenGuard
from juqueue.api.context import AppContext
from juqueue.api.routes import control, dashboard, events, experiments, health, logs, nodes, pages, runs, status, usage
from juqueue.version import __version__


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(
        title="JuQueue",
        version=__version__,
        description="Every path except `/`, `/static/*`, the docs and `/health` needs the token: "
        "`Authorization: Bearer <token>`, the `X-JuQueue-Token` header, or the dashboard's cookie. "
        "Requests other than GET/HEAD/OPTIONS need the token in a header or an `Origin` equal to the "
        "server's own: the cookie alone answers them 403 (CSRF protection).",
    )
    app.state.ctx = ctx
    for module in (health, pages, dashboard, runs, logs, status, experiments, nodes, control, usage, events):
        app.include_router(module.router)
    app.add_middleware(TokenGuard, token=ctx.token, port=ctx.port)
    app.mount("/static", StaticFiles(directory=str(files("juqueue.api").joinpath("static"))), name="static")

    @app.exception_handler(TimeoutError)  # Controller.call's future timed out (same class in 3.11)
    async def _controller_busy(_request: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "the controller did not answer in time; try again"}, status_code=503)

    return app
