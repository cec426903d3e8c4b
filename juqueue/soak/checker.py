"""The soak's verdict: what must hold after every fault, checked from the runs' own journals, the
store and what the soak saw (pure: `check(evidence)` returns the violations, one sentence each).

- every run is final, in the status its last attempt's command decided (an `end` with exit 0:
  completed; with its failing code: failed), or cancelled when the soak's last verb on it was a
  cancel; nothing failed for a cause outside its command (a full disk, a lost node, a move, a
  broker restart) and no interruption spent a retry;
- nothing recorded completed was interrupted by JuQueue (its last attempt ended on its own);
- no two attempts of one run overlapped in time (by the journals and by the store); attempt
  numbers only grow, and no attempt number started twice;
- every attempt a run journalled is in the store; the store passes SQLite's integrity check;
- no process, job or broker outlived `stop --cancel-jobs`;
- the feed client's last word on each run is its final status.
"""

from __future__ import annotations

from juqueue.soak.evidence import SoakEvidence

FINAL = {"completed", "failed", "cancelled"}
#: slack for clocks read by different processes on one machine (journal lines vs store times)
CLOCK_SLACK_S = 0.05


def _last_verb(verbs: list[dict]) -> dict[str, tuple[str, float]]:
    last: dict[str, tuple[str, float]] = {}
    for v in sorted(verbs, key=lambda v: v["t"]):
        if v["verb"] in ("cancel", "requeue", "resume"):
            for gid in v["runs"]:
                last[gid] = (v["verb"], v["t"])
    return last


def check_final_status(ev: SoakEvidence) -> list[str]:
    out = []
    expected = {gid: int(code) for gid, code in ev.meta.get("expected_exit", {}).items()}
    last_verb = _last_verb(ev.verbs)
    for gid, code in sorted(expected.items()):
        run = ev.runs.get(gid)
        if run is None:
            out.append(f"{gid}: defined by the soak but not in the store")
            continue
        status = run["status"]
        if status not in FINAL:
            out.append(f"{gid}: not final at the end: {status} (reason {run['reason']!r})")
            continue
        if run.get("retries_used"):
            out.append(f"{gid}: spent {run['retries_used']} retries though max_retries is 0 (an interruption spent one)")
        verb = last_verb.get(gid, ("", 0.0))
        attempt = next((a for a in ev.journals.get(gid, []) if a.number == run["attempt"]), None)
        if status == "cancelled":
            if verb[0] != "cancel":
                out.append(f"{gid}: cancelled, but the soak's last verb on it was {verb[0] or 'none'}")
            continue
        if attempt is None or attempt.end_code is None:
            out.append(f"{gid}: {status} (exit {run['exit_code']}), but its attempt {run['attempt']} never finished its work "
                       f"(journal: {attempt}); reason {run['reason']!r}")
            continue
        decided = "completed" if attempt.end_code == 0 else "failed"
        if status != decided or attempt.end_code != code:
            out.append(f"{gid}: {status} with exit {run['exit_code']}, but its command decided {decided} "
                       f"(exit {attempt.end_code}, expected {code}); reason {run['reason']!r}")
        if verb[0] == "cancel" and attempt.end_t is not None and attempt.end_t > verb[1] + 1.0:
            out.append(f"{gid}: cancelled at {verb[1]:.2f} but its attempt {attempt.number} went on and ended at {attempt.end_t:.2f}")
        stored = next((a for a in ev.attempts.get(gid, []) if a["number"] == run["attempt"]), None)
        if stored is not None and (stored["stop_reason"] or stored["end_reason"] != "exited"):
            out.append(f"{gid}: recorded {status} but its attempt {run['attempt']} was stopped by JuQueue "
                       f"(end_reason {stored['end_reason']}, stop_reason {stored['stop_reason']})")
    return out


def check_attempts(ev: SoakEvidence) -> list[str]:
    out = []
    for gid, attempts in sorted(ev.journals.items()):
        order = ev.start_order.get(gid, [])
        if any(b <= a for a, b in zip(order, order[1:])):
            out.append(f"{gid}: attempt numbers did not only grow: starts in order {order}")
        for prev, nxt in zip(attempts, attempts[1:]):
            if prev.last_t > nxt.first_t + CLOCK_SLACK_S:
                out.append(f"{gid}: attempts {prev.number} and {nxt.number} overlapped: {prev.number} was still "
                           f"running at {prev.last_t:.2f}, {nxt.number} started at {nxt.first_t:.2f}")
        stored = {a["number"]: a for a in ev.attempts.get(gid, [])}
        for att in attempts:
            if att.number not in stored:
                out.append(f"{gid}: attempt {att.number} ran (journal) but the store has no such attempt")
        spans = sorted((a["started_at"], a["ended_at"], a["number"]) for a in stored.values() if a["started_at"])
        for (_s1, e1, n1), (s2, _e2, n2) in zip(spans, spans[1:]):
            if e1 is None or e1 > s2 + CLOCK_SLACK_S:
                out.append(f"{gid}: the store's attempts {n1} and {n2} overlap (ended {e1}, next started {s2})")
    return out


def check_leftovers(ev: SoakEvidence) -> list[str]:
    out = []
    for pid, cmd in ev.leftovers.get("processes", []):
        out.append(f"process {pid} outlived `stop --cancel-jobs`: {cmd[:160]}")
    for job in ev.leftovers.get("jobs", []):
        out.append(f"SLURM job outlived `stop --cancel-jobs`: {job}")
    if ev.leftovers.get("stop_rc") not in (0, None):
        out.append(f"`stop --cancel-jobs` left serve with exit code {ev.leftovers.get('stop_rc')}")
    if ev.leftovers.get("stop_hung"):
        out.append("serve did not end after `stop --cancel-jobs` (it was SIGKILLed)")
    return out


def check_store_and_feed(ev: SoakEvidence) -> list[str]:
    out = []
    if ev.integrity != "ok":
        out.append(f"the store failed SQLite's integrity check: {ev.integrity}")
    out += [f"a journal line is not whole: {line}" for line in ev.bad_lines]
    seen = ev.feed.get("seen", {})
    if ev.meta.get("feed", True):
        for gid, run in sorted(ev.runs.items()):
            if gid not in ev.meta.get("expected_exit", {}):
                continue
            statuses = seen.get(gid, [])
            if not statuses or statuses[-1] != run["status"]:
                out.append(f"{gid}: the feed client's last word was {statuses[-1] if statuses else 'nothing'}, "
                           f"its final status is {run['status']}")
    return out


def check(ev: SoakEvidence) -> list[str]:
    """Every violation, one sentence each; empty: the soak held."""
    return check_final_status(ev) + check_attempts(ev) + check_store_and_feed(ev) + check_leftovers(ev)
