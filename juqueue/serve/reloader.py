"""The reloader step: the definitions applied at start (and the original JuQueue's statuses
adopted into a new store), then `reload` for the API: clusters.yaml and the definitions
re-read and applied, with a confirmation when many live runs would stop."""

from __future__ import annotations

import ctypes
import gc
import logging
import threading

from juqueue.controller.controller import Controller
from juqueue.definitions.models import ClusterSpec
from juqueue.errors import ConfigError
from juqueue.serve.backends_step import add_slurm_backend
from juqueue.serve.broker_step import is_loopback
from juqueue.serve.context import ServeContext

log = logging.getLogger("juqueue.server")

CONFIRM_STOPS = 10  # a reload that stops more live runs than this needs `--yes`


def release_memory() -> None:
    """Hand what a reload's definitions held (about 4 KB per run while they are read: 100,000 runs
    are 400 MB) back to the system: collected, then glibc's free heap trimmed (elsewhere: no-op)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class Reloader:
    """Evaluates on the caller's thread (a subprocess), applies on the controller thread."""

    def __init__(self, ctx: ServeContext, controller: Controller) -> None:
        self.ctx = ctx
        self.controller = controller

    def reload_clusters(self) -> tuple[dict, list[str]]:
        """Re-read clusters.yaml and apply it; a file with errors changes nothing."""
        from juqueue.definitions.clusters import load_clusters

        path = self.ctx.def_dir / "clusters.yaml"
        try:
            new = load_clusters(path, self.ctx.settings.cluster_defaults())
        except ConfigError as exc:
            return {}, [f"{exc} (clusters.yaml not applied)"]
        return self.controller.call(lambda: self._apply_clusters(path, new))  # type: ignore[return-value]

    def _apply_clusters(self, path: object, new: dict[str, ClusterSpec]) -> tuple[dict, list[str]]:
        """On the controller thread, which owns the backends and the cluster set."""
        backends, broker = self.controller.backends, self.ctx.broker
        first_slurm = sorted(n for n, c in new.items() if c.type == "slurm") if "slurm" not in backends else []
        if first_slurm and broker is not None and is_loopback(broker.host):
            return {}, [f"{path}: cluster {first_slurm[0]!r} is the first slurm cluster, but the embedded broker listens on "
                        f"{broker.host} only, which compute nodes cannot reach: restart `juqueue serve` (with "
                        "--broker-host if needed) to add it; clusters.yaml was not applied"]
        add_slurm_backend(backends, self.ctx.work, new)
        return self.controller.apply_clusters(new), []

    def reload(self, yes: bool = False, reread_clusters: bool = True, dry_run: bool = False) -> dict:
        """Re-read clusters.yaml and the definitions and apply them. More than CONFIRM_STOPS live
        runs to stop (their definitions changed) needs `yes`; else nothing is applied. At start
        clusters.yaml was just read: `reread_clusters=False` leaves it. `dry_run`: what a reload
        would do now, nothing applied (the dashboard asks before it reloads)."""
        from juqueue.definitions.subprocess_eval import load_definitions

        controller = self.controller
        result = load_definitions(self.ctx.def_dir, set(controller.clusters_view), timeout_s=self.ctx.settings.eval_timeout_s)
        if dry_run:
            return self._preview(result)
        if not yes and not getattr(result, "aborted", False):
            would_stop = controller.call(lambda: controller.actions.preview_stops(result))
            if len(would_stop) > CONFIRM_STOPS:  # type: ignore[arg-type]
                return {"added": [], "updated": [], "undefined": [], "stopped": [], "errors": [],
                        "needs_confirmation": True, "would_stop": would_stop}
        cluster_changes, cluster_errors = self.reload_clusters() if reread_clusters else ({}, [])
        if getattr(result, "aborted", False):
            errors = cluster_errors + [str(e) for e in result.errors]
            controller.definition_errors = errors
            return {"added": [], "updated": [], "undefined": [], "stopped": [], "errors": errors, "clusters": cluster_changes}
        summary = controller.call(lambda: controller.apply_definitions(result))
        del result
        release_memory()
        summary["errors"] = cluster_errors + summary["errors"]  # type: ignore[index]
        summary["clusters"] = cluster_changes  # type: ignore[index]
        if cluster_errors:
            controller.definition_errors = summary["errors"]  # type: ignore[index]
        return summary  # type: ignore[return-value]

    def _preview(self, result) -> dict:  # type: ignore[no-untyped-def]
        """The store's difference against `result`, rolled back (clusters.yaml is not compared)."""
        if getattr(result, "aborted", False):
            return {"added": [], "updated": [], "undefined": [], "would_stop": [], "aborted": True,
                    "errors": [str(e) for e in result.errors]}
        from juqueue.definitions.validation import check_run_slots

        controller, store = self.controller, self.ctx.store
        assert store is not None

        def dry_run() -> object:
            slots = {name: spec.num_slots for name, spec in controller.clusters_view.items()}
            checked = check_run_slots(result, slots)
            return checked, store.apply_definitions(checked, hold_new=controller.config.hold_new, dry_run=True)

        checked, summary = controller.call(dry_run)  # type: ignore[misc]
        return {"added": summary.added, "updated": summary.updated, "undefined": summary.undefined,
                "would_stop": summary.restart, "aborted": False, "errors": [str(e) for e in checked.errors]}

    def adopt_original_statuses(self) -> None:
        """A work dir the original JuQueue used: its runs keep what it knew (finished runs are not
        rerun, inactive ones are held), read once, when this store is new."""
        from juqueue.original_statuses import original_run_statuses

        found = original_run_statuses(self.ctx.work.root)
        for warning in found.warnings:
            log.warning("original work dir: %s", warning)
        if found.statuses:
            controller = self.controller
            done = controller.call(lambda: controller.actions.adopt_original(found.statuses))
            log.info("original work dir: kept the status of %d run(s) from juqueue-run.json", len(done))  # type: ignore[arg-type]


class ReloaderStep:
    """Reads the def dir and the settings' evaluation timeout; fills ctx.reload. At start the
    definitions are applied (nothing to confirm) in the background, so the API answers while
    100,000 runs are read (ctx.loading, `/api/status` key `loading`, says so); their errors are
    logged; a new store adopts the original JuQueue's statuses. Reloads take turns. Stop undoes nothing."""

    name = "reloader"
    requires: tuple[str, ...] = ("controller",)

    def start(self, ctx: ServeContext) -> None:
        assert ctx.controller is not None
        reloader = Reloader(ctx, ctx.controller)
        turn = threading.Lock()  # the first reload holds it until it is over

        def reload(yes: bool = False, dry_run: bool = False) -> dict:
            with turn:
                return reloader.reload(yes=yes, dry_run=dry_run)

        def first() -> None:
            try:
                summary = reloader.reload(yes=True, reread_clusters=False)
                for error in summary["errors"]:
                    log.error("definition error: %s", error)
                if ctx.fresh_store:
                    reloader.adopt_original_statuses()
            except Exception:
                log.exception("reading the definitions at start failed: `juqueue reload` tries again")
            finally:
                ctx.loading = False
                turn.release()

        ctx.loading = True
        turn.acquire()
        threading.Thread(target=first, name="juqueue-first-reload", daemon=True).start()
        ctx.reload = reload

    def stop(self, ctx: ServeContext) -> None:
        ctx.reload = None
