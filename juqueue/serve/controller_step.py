"""The controller step: the controller thread, which from its start owns the cluster set
(`ControllerConfig.clusters`) and the backends. Other threads change them only through
`Controller.call` and read the clusters as `Controller.clusters_view`, an immutable copy."""

from __future__ import annotations

import logging

from juqueue.serve.context import ServeContext
from juqueue.settings import Settings

log = logging.getLogger("juqueue.server")


def controller_timings(settings: Settings) -> dict[str, float]:
    """ControllerConfig's timing fields, from the settings."""
    return {"lease_ttl_s": settings.lease_ttl_s, "controller_silence_s": settings.controller_silence_s,
            "start_timeout_s": settings.start_timeout_s, "stop_escalate_s": settings.stop_escalate_s,
            "heartbeat_interval_s": settings.heartbeat_interval_s, "heartbeat_timeout_s": settings.heartbeat_timeout_s}


class ControllerStep:
    """Reads opts.tick_interval, opts.flower_port (workers send task events for Flower),
    opts.hold_new and the settings' timings; fills ctx.controller. `serve` becomes a child
    subreaper first, so orphaned runs of local nodes stay findable. Stop stops the nodes
    that die with the server (all with ctx.cancel_jobs) and records whether SLURM jobs live on."""

    name = "controller"
    requires: tuple[str, ...] = ("store", "broker", "backends")

    def start(self, ctx: ServeContext) -> None:
        from juqueue.broker.client import make_redis
        from juqueue.celery_app import make_celery_app
        from juqueue.controller.controller import Controller, ControllerConfig, namespace_for
        from juqueue.process_reaper import become_subreaper

        assert ctx.store is not None
        namespace = namespace_for(ctx.work.root)
        client = make_redis(ctx.broker_url, socket_timeout=10)
        app = make_celery_app(ctx.broker_url)
        become_subreaper()
        # a copy: the controller changes its cluster set on reloads, ctx.clusters stays as read at start
        config = ControllerConfig(ctx.work, dict(ctx.clusters), tick_interval_s=ctx.opts.tick_interval,
                                  task_events=bool(ctx.opts.flower_port), hold_new=ctx.opts.hold_new,
                                  **controller_timings(ctx.settings))
        controller = Controller.on_redis(config, ctx.store, client, app, ctx.backends, namespace)
        controller.start()
        ctx.controller = controller

    def stop(self, ctx: ServeContext) -> None:
        controller = ctx.controller
        if controller is None:
            return
        try:
            controller.shutdown(cancel_jobs=ctx.cancel_jobs)
            ctx.slurm_jobs_alive = any(n.backend == "slurm" for n in controller.nodes.values() if n.state.is_live)
        except Exception:
            log.exception("stopping the controller failed")
