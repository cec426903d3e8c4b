"""The store step: the store opened, its schema created or upgraded (a store newer than this
code is refused here, before a broker or worker starts)."""

from __future__ import annotations

from juqueue.serve.context import ServeContext


class StoreStep:
    """Reads opts.db_url (None: SQLite in the work dir); fills ctx.store and ctx.fresh_store.
    Stop undoes nothing: the engine's connections end with the process, and a controller
    thread that outlived its join may still be writing."""

    name = "store"
    requires: tuple[str, ...] = ("workdir",)

    def start(self, ctx: ServeContext) -> None:
        from juqueue.store.engine import make_engine
        from juqueue.store.store import Store

        ctx.store = Store(make_engine(ctx.opts.db_url, ctx.work.root))
        ctx.fresh_store = not any(ctx.store.status_counts().values())

    def stop(self, ctx: ServeContext) -> None:
        pass
