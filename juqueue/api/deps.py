"""Dependency aliases for the routes: the context, the store and the token check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from juqueue.api.auth import require_token
from juqueue.api.context import AppContext
from juqueue.store.store import Store


def get_context(request: Request) -> AppContext:
    return request.app.state.ctx


def get_store(request: Request) -> Store:
    return request.app.state.ctx.store


ContextDep = Annotated[AppContext, Depends(get_context)]
StoreDep = Annotated[Store, Depends(get_store)]
AuthDep = Annotated[None, Depends(require_token)]
