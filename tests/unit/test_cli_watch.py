"""`juqueue watch` without a server: the renderer against recorded answers (a golden file), the
state kept from snapshots and feed deltas, the `--until-done` decision, the ETA, the SSE parser.

Golden file: tests/unit/golden/watch_render.txt, drawn from tests/unit/golden/watch_api.json at
its `now`, in UTC. After an intended layout change, rewrite it with
`JUQUEUE_UPDATE_GOLDEN=1 pytest tests/unit/test_cli_watch.py` and review the diff.
"""

from __future__ import annotations

import copy
import io
import json
import time
from pathlib import Path

import pytest
from rich.console import Console

from juqueue.cli.watch_feed import FeedMessage, parse_sse
from juqueue.cli.watch_render import duration, progress_bar, render_watch, slot_map
from juqueue.cli.watch_state import WatchState, apply_delta, apply_snapshot, eta_s, seed_events, until_done
from support.golden import assert_matches_golden

GOLDEN = Path(__file__).parent / "golden"
API = json.loads((GOLDEN / "watch_api.json").read_text())
NOW = API["now"]


@pytest.fixture(autouse=True)
def _utc(monkeypatch):
    """Event times print as the local time of day: pin it."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def plain(renderable: object, width: int = 120) -> str:
    out = Console(file=io.StringIO(), width=width, highlight=False, color_system=None, force_terminal=False,
                  legacy_windows=False)
    out.print(renderable)
    return out.file.getvalue()  # type: ignore[attr-defined]


def watched(focus: str | None = None) -> WatchState:
    """The recorded server as a view sees it: a snapshot 5 minutes ago (18 fewer sweep runs done),
    the recorded one now, the recent runs, then one delta."""
    state = WatchState(server="http://127.0.0.1:51234", focus=focus)
    earlier = copy.deepcopy(API["experiments"])
    earlier[0]["counts"]["completed"] -= 18
    earlier[0]["counts"]["queued"] += 18
    apply_snapshot(state, API["status"], earlier, NOW - 300)
    apply_snapshot(state, API["status"], API["experiments"], NOW)
    seed_events(state, API["recent_runs"])
    apply_delta(state, API["delta"])
    state.feed = "feed: live"
    return state


def test_screen_matches_golden_file_line_by_line() -> None:
    got = plain(render_watch(watched(), NOW))
    golden = GOLDEN / "watch_render.txt"
    assert_matches_golden(got, golden)


def test_the_screen_shows_each_part() -> None:
    out = plain(render_watch(watched(), NOW))
    assert "JuQueue 1.0.0 at http://127.0.0.1:51234" in out and "store ok" in out and "feed: live" in out
    assert "cluster local is paused: the work dir refused a write" in out
    assert "sweep  [" in out and "33/48 68%" in out and "ETA 4m" in out  # 18 runs in 300 s, 15 left
    assert "other  [" in out and "ETA ~" not in out.split("other  [")[1].splitlines()[0]  # no rate, no projection
    assert "nodes 2 live, 1 pending (target 2)  slots 5/8 busy\n  4.250 node-hours (end estimated)  efficiency 79%" in out
    assert "booster-1  up        ■■■· 3/4  1h05m left" in out
    assert "controller: emptying booster-2 since 05:45:40: sweep@lr-0.1 -> booster-1, sweep@lr-0.2 -> booster-3" in out
    assert "controller: booster-3 replaces booster-2 (protected for 15m)" in out
    assert "controller: next wall time to end: booster-1 in 1h05m" in out  # booster-2 has its replacement
    assert "node booster-0 gone: wall time reached" in out
    assert "sweep@lr-0.6 failed: exit code 1 [no retries left]" in out


def test_text_from_the_server_is_not_read_as_markup() -> None:
    out = plain(render_watch(watched(), NOW))
    for literal in ("[bold]not markup[/bold]", "[red]cmd[/red]", "not movable [yet]", "[no retries left]"):
        assert literal in out


def test_one_experiment_narrows_the_view() -> None:
    out = plain(render_watch(watched(focus="other"), NOW))
    assert "other  [" in out and "sweep  [" not in out
    assert "Runs of other: 10 completed  1 running  2 queued  1 held" in out
    events = out.split("Last events of other")[1]
    assert "other@x running on booster-1 (attempt 2)" in events and "sweep@" not in events
    assert "booster-1  up        □■□· 3/4" in out  # its run ■, another experiment's □, a free slot ·


def test_minimal_state_renders() -> None:
    state = WatchState(server="unix:/tmp/s.sock")
    apply_snapshot(state, {"counts": None, "clusters": [], "definition_errors": [], "version": "1.0",
                           "store_error": "store unavailable: refused"}, [], NOW)
    lines = plain(render_watch(state, NOW)).splitlines()
    assert lines[0].startswith("JuQueue 1.0 at unix:/tmp/s.sock  ·  store unavailable: refused")
    assert "no experiments" in lines and "  none yet" in lines


@pytest.mark.parametrize(("counts", "code"), [
    (None, None),
    ({}, 0),
    ({"completed": 3, "failed": 0, "cancelled": 0, "queued": 0, "held": 0}, 0),
    ({"completed": 3, "failed": 1}, 1),
    ({"completed": 3, "cancelled": 1}, 1),
    ({"completed": 3, "failed": 1, "running": 1}, None),
    ({"completed": 3, "held": 1}, None),
    ({"queued": 2}, None),
])
def test_until_done_decision(counts, code) -> None:
    assert until_done(counts) == code


def test_until_done_reads_the_focused_experiment() -> None:
    state = watched(focus="done")
    assert until_done(state.watched_counts()) == 0
    state.focus = "sweep"
    assert until_done(state.watched_counts()) is None
    assert WatchState(server="x", focus="gone").watched_counts() is None


def test_a_delta_updates_nodes_counts_and_events_and_marks_figures_stale() -> None:
    state = WatchState(server="x")
    apply_snapshot(state, API["status"], API["experiments"], NOW)
    assert not state.stale
    node = dict(API["status"]["clusters"][0]["nodes"][0], slots_used=4, slots=["a@1", "a@2", "a@3", "a@4"])
    apply_delta(state, {"ts": NOW, "runs": [], "nodes": [node], "counts": {"completed": 1}})
    booster = state.clusters[0]["nodes"]
    assert [n["name"] for n in booster] == ["booster-1", "booster-2", "booster-3"]
    assert booster[0]["slots_used"] == 4 and state.counts == {"completed": 1} and state.stale
    assert not state.events  # same state: no event
    apply_delta(state, {"ts": NOW, "nodes": [dict(node, state="gone", live=False, reason="gone: lost")]})
    assert [n["name"] for n in state.clusters[0]["nodes"]] == ["booster-2", "booster-3"]
    assert state.events[-1].text == "node booster-1 gone: lost"
    apply_delta(state, {"ts": NOW, "nodes": [{"name": "new-1", "cluster": "fresh", "state": "pending"}]})
    assert state.clusters[-1]["name"] == "fresh" and state.clusters[-1]["nodes"][0]["name"] == "new-1"


def test_eta_from_the_rate_seen_then_from_the_projection() -> None:
    state = watched()
    seconds, estimated = eta_s(state, "sweep", NOW)
    assert not estimated and seconds == pytest.approx(15 / (18 / 300))
    only_now = WatchState(server="x")
    apply_snapshot(only_now, API["status"], API["experiments"], NOW)
    only_now.experiment_clusters["sweep"] = "booster"
    seconds, estimated = eta_s(only_now, "sweep", NOW)
    assert estimated and seconds == pytest.approx(2.0 * 3600 / 2)  # 2 node-hours on 2 live nodes
    assert eta_s(only_now, "other", NOW) == (None, False)  # no rate, no projection
    assert eta_s(only_now, "done", NOW) == (0.0, False)
    only_now.experiments["held"] = {"counts": {"held": 2, "completed": 1}}
    assert eta_s(only_now, "held", NOW) == (None, False)  # held runs wait for a user


def test_requeued_runs_restart_the_rate() -> None:
    state = watched()
    fewer = copy.deepcopy(API["experiments"])
    fewer[0]["counts"]["completed"] -= 5
    apply_snapshot(state, API["status"], fewer, NOW + 10)
    assert list(state.progress["sweep"]) == [(NOW + 10, 28)]


def test_progress_bar_and_slot_map() -> None:
    bar = progress_bar({"completed": 98, "failed": 1, "queued": 1}, width=20).plain
    assert len(bar) == 20 and bar.count("X") == 1 and bar.count("░") == 1
    assert progress_bar({}, width=5).plain == "     "
    assert slot_map({"slots": [None, "e@1"], "slots_total": 2}, None) == "·■"
    assert slot_map({"slots": [], "slots_used": 1, "slots_total": 3}, "e") == "■··"  # slots not sent yet
    assert slot_map({"slots": [None] * 100, "slots_total": 100}, None) == ""  # too wide: counts only


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (59, "59s"), (61, "1m"), (3900, "1h05m"), (90000, "1d01h")])
def test_duration(seconds, text) -> None:
    assert duration(seconds) == text


def test_parse_sse() -> None:
    lines = ["id: b-1", "event: hello", 'data: {"id": "b-1"}', "", ": keep-alive", "",
             "id: b-2", "event: delta", 'data: {"runs":', "data: []}", "", "event: resync", "data: not json", ""]
    assert list(parse_sse(lines)) == [FeedMessage("b-1", "hello", {"id": "b-1"}),
                                      FeedMessage("b-2", "delta", {"runs": []}),
                                      FeedMessage(None, "resync", "not json")]


def test_a_full_screen_shows_the_busiest_nodes_when_not_all_fit() -> None:
    out = plain(render_watch(watched(), NOW, max_nodes=2))
    assert "booster-1  up" in out and "booster-2  draining" in out and "booster-3  starting" not in out
    assert "… and 1 more node (juqueue status lists them)" in out
