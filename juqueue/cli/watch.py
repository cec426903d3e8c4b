"""`juqueue watch`: a live terminal view of the server, until Ctrl-C (or until every run is final).

The I/O side only: it fetches the overview answers (`/api/status`, `/api/experiments`, a page of
the latest runs, never every run), follows the live feed (juqueue.cli.watch_feed) and applies
its deltas to the state (juqueue.cli.watch_state), and redraws with rich's `Live` what
juqueue.cli.watch_render draws. The overview is fetched again at most every `SNAPSHOT_MIN_S`
after a delta (the per-experiment figures are not in the deltas), after a `resync`, and every
`QUIET_REFRESH_S` when nothing happens (node-hours and heartbeats move on their own).
"""

from __future__ import annotations

import queue
import time
from typing import Annotated, Any, Optional

import typer

from juqueue.cli.options import Connection, with_option_groups
from juqueue.cli.plumbing import api_client, console, fail
from juqueue.cli.watch_state import FINAL, WatchState, apply_delta, apply_snapshot, seed_events, until_done

SNAPSHOT_MIN_S = 1.0
QUIET_REFRESH_S = 10.0
TICK_S = 1.0  # the screen is redrawn at least this often (times left, heartbeat ages)
GIVE_UP_S = 120.0  # `--until-done` ends (exit 2) when the server has not answered this long
RECENT_RUNS = 10  # runs fetched to show the events before the view started (and while polling)
INTERRUPTED = 130  # `--until-done` stopped by Ctrl-C: not done, as a shell reports SIGINT

ExperimentOpt = Annotated[Optional[str], typer.Option("--experiment", "-e", help="Only this experiment: its progress, its runs' events, and `--until-done` waits for its runs only.")]
IntervalOpt = Annotated[Optional[float], typer.Option("-n", "--interval", min=0.2, help="Refresh every SECONDS by fetching the overview instead of following the live feed.", metavar="SECONDS")]
OnceOpt = Annotated[bool, typer.Option("--once", help="Print one snapshot and exit (the default when stdout is not a terminal).")]
UntilDoneOpt = Annotated[bool, typer.Option("--until-done", help="Exit when every run is final: 0 if none failed or was cancelled, 1 otherwise (130 on Ctrl-C).")]
EventsOpt = Annotated[int, typer.Option("--events", min=0, help="How many of the last events to show.")]


@with_option_groups
def watch(ctx: typer.Context, experiment: ExperimentOpt = None, interval: IntervalOpt = None, once: OnceOpt = False,
          until_done_: UntilDoneOpt = False, events: EventsOpt = 8, *, conn: Connection) -> None:
    """A live view: progress and ETA per experiment, nodes and their slots, node-hours, what the controller does, the last events."""
    out = console()
    try:
        with api_client(ctx, conn) as api:
            code = _run(Watch(api, out, experiment, events), interval, once, until_done_)
    except KeyboardInterrupt:  # Ctrl-C before the view was up (its first answers)
        code = INTERRUPTED if until_done_ else 0
    raise typer.Exit(code)


def _run(view: "Watch", interval: float | None, once: bool, wait_done: bool) -> int:
    """One snapshot (`--once`, or off a terminal), or the live view; the exit code."""
    out, focus = view.out, view.state.focus
    view.refresh(time.time(), recent=True)
    if focus is not None and focus not in view.state.experiments:
        known = ", ".join(sorted(view.state.experiments)) or "none"
        fail(f"no experiment named {focus!r} (known: {known})")
    if once or (not out.is_terminal and interval is None and not wait_done):
        out.print(view.screen(time.time()))
        code = until_done(view.state.watched_counts()) if wait_done else 0
        return 1 if code is None else code  # --once --until-done: not final yet is not done
    try:
        return view.follow(interval, wait_done)
    except KeyboardInterrupt:
        return INTERRUPTED if wait_done else 0
    finally:
        view.close()


class Watch:
    """One view: the state, the client, the feed reader (when following the feed)."""

    def __init__(self, api: Any, out: Any, focus: str | None, events: int) -> None:
        self.api, self.out, self.events = api, out, events
        self.state = WatchState(server=api.url, focus=focus)
        self.reader: Any = None
        self._waited: list[Any] = []  # a feed message `_wait` took off the queue, for `_drain`

    def screen(self, now: float, fit: bool = False) -> Any:
        """What to print; with `fit`, as many node lines as the terminal's height leaves room for."""
        from juqueue.cli.watch_render import render_watch

        max_nodes = None
        if fit:
            s = self.state
            fixed = 14 + self.events + 4 * min(len(s.experiments), 15) + 6 * len(s.clusters)
            max_nodes = max(2, (self.out.height - fixed) // max(1, 2 * len(s.clusters)))
        return render_watch(self.state, now, self.events, self.out.width, max_nodes)

    def refresh(self, now: float, recent: bool = False) -> None:
        """The overview answers again (and, with `recent`, the latest runs as events)."""
        status = self.api.get("/api/status")
        experiments = self.api.get("/api/experiments")
        apply_snapshot(self.state, status, experiments, now)
        if recent:
            focus = self.state.focus
            ended = self.api.get("/api/runs", sort="-ended_at", limit=RECENT_RUNS, status=list(FINAL), experiment=focus)
            started = self.api.get("/api/runs", sort="-started_at", limit=RECENT_RUNS, status=["running"],
                                   experiment=focus)
            seed_events(self.state, [*ended, *started])

    def try_refresh(self, now: float, recent: bool = False) -> None:
        """`refresh`, noting a server that does not answer (or answers 5xx: its controller is busy)
        instead of ending the view."""
        from juqueue.client import ApiError, ServerUnreachable

        try:
            self.refresh(now, recent)
        except (ServerUnreachable, ApiError) as exc:
            if isinstance(exc, ApiError) and exc.status_code < 500:
                raise
            if self.state.unreachable_since is None:
                self.state.unreachable_since = now
            self.state.fetched_at = now  # try again after the usual wait, not in a tight loop

    def follow(self, interval: float | None, wait_done: bool) -> int:
        """Redraw until Ctrl-C, or with `wait_done` until `until_done` decides (its exit code)."""
        from rich.live import Live

        if interval is None:
            from juqueue.cli.watch_feed import FeedReader

            self.reader = FeedReader(self.api.url, self.api.token)
            self.state.feed = "feed: connecting"
            self.reader.start()
        else:
            self.state.feed = f"every {interval:g} s"
        if not self.out.is_terminal:  # --until-done or -n in a script: plain snapshots, no cursor moves
            return self._loop(interval, wait_done, None)
        with Live(console=self.out, auto_refresh=False, screen=True, redirect_stdout=False) as live:
            code = self._loop(interval, wait_done, live)
        if wait_done:  # the final state stays on the terminal after the full-screen view
            self.out.print(self.screen(time.time()))
        return code

    def _loop(self, interval: float | None, wait_done: bool, live: Any) -> int:
        last_print = 0.0
        while True:
            now = time.time()
            if interval is not None:
                if now - (self.state.fetched_at or 0.0) >= interval:
                    self.try_refresh(now, recent=True)
            else:
                self._drain(now)
            verdict = self._verdict(now) if wait_done else None
            if verdict is not None:
                if live is None:
                    self.out.print(self.screen(time.time()))
                return verdict
            if wait_done and self.state.unreachable_since is not None and now - self.state.unreachable_since > GIVE_UP_S:
                fail(f"the server at {self.state.server} has not answered for {GIVE_UP_S:g} s; giving up")
            if live is not None:
                live.update(self.screen(now, fit=True), refresh=True)
            elif interval is not None and not wait_done and self.state.fetched_at != last_print:
                last_print = self.state.fetched_at or 0.0
                self.out.print(self.screen(now))
                self.out.print()
            self._wait(interval)

    def _wait(self, interval: float | None) -> None:
        """Until the next feed message or tick (following the feed), or the next poll."""
        if self.reader is None:
            time.sleep(min(TICK_S, interval or TICK_S))
            return
        try:
            self._waited.append(self.reader.messages.get(timeout=TICK_S))
        except queue.Empty:
            pass

    def _drain(self, now: float) -> None:
        """Apply what the feed sent; fetch the overview when it is due."""
        from juqueue.cli.watch_feed import LOST

        s = self.state
        resync = False
        while True:
            if self._waited:
                msg = self._waited.pop(0)
            else:
                try:
                    msg = self.reader.messages.get_nowait()
                except queue.Empty:
                    break
            if msg.event == LOST:
                s.feed = f"feed lost ({msg.data}); reconnecting"
                continue
            s.feed = "feed: live"
            if msg.event == "delta" and isinstance(msg.data, dict):
                apply_delta(s, msg.data)
            elif msg.event == "resync":
                resync = True
        due = now - (s.fetched_at or 0.0)
        if resync or (s.stale and due >= SNAPSHOT_MIN_S) or due >= QUIET_REFRESH_S:
            self.try_refresh(now, recent=resync)

    def _verdict(self, now: float) -> int | None:
        """`until_done` on figures no older than the last delta: a fresh overview is fetched first."""
        if until_done(self.state.watched_counts()) is None:
            return None
        if self.state.stale or self.state.focus is not None:
            self.try_refresh(now)
        return until_done(self.state.watched_counts()) if not self.state.stale else None

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
