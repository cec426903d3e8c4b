"""`juqueue serve` from start to end: the steps built, started in order, served, stopped in reverse."""

from __future__ import annotations

import logging
import sys

from juqueue.errors import JuQueueError
from juqueue.serve.api_step import ApiStep
from juqueue.serve.backends_step import BackendsStep
from juqueue.serve.broker_step import BrokerStep
from juqueue.serve.context import ServeContext
from juqueue.serve.controller_step import ControllerStep
from juqueue.serve.helpers_step import HelpersStep
from juqueue.serve.listen import ListenStep
from juqueue.serve.options import ServeOptions
from juqueue.serve.reloader import ReloaderStep
from juqueue.serve.steps import Step, StepRunner
from juqueue.serve.store_step import StoreStep
from juqueue.serve.workdir_step import WorkDirStep
from juqueue.settings import Settings


def serve_steps() -> list[Step[ServeContext]]:
    """The steps of one `serve`, in the order they start (each also after what it requires)."""
    return [WorkDirStep(), ListenStep(), StoreStep(), BrokerStep(), BackendsStep(), ControllerStep(),
            ReloaderStep(), HelpersStep(), ApiStep()]


class Server:
    """One `serve`: its context and its steps; `stop` undoes exactly the steps that started."""

    def __init__(self, opts: ServeOptions, settings: Settings) -> None:
        self.ctx = ServeContext.create(opts, settings)
        self.runner: StepRunner[ServeContext] = StepRunner(serve_steps())

    def start(self) -> None:
        self.runner.start(self.ctx)

    def serve_forever(self) -> int:
        try:
            api = self.runner.step("api")
            assert isinstance(api, ApiStep)
            api.serve(self.ctx)
        finally:
            self.stop()
        return 0

    def stop(self) -> None:
        self.runner.stop(self.ctx)


def run_server(opts: ServeOptions, settings: Settings | None = None) -> int:
    """Start everything, serve until stopped, tear down; a JuQueueError at start (a bad
    `JUQUEUE_*` setting too) is one line, exit 2. `settings` None: defaults and environment."""
    logging.basicConfig(level=opts.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = Server(opts, settings if settings is not None else Settings.from_env())
        server.start()
    except JuQueueError as exc:
        print(f"juqueue: {exc}", file=sys.stderr)
        return 2
    return server.serve_forever()
