"""What users do during the soak, through the API: cancel, requeue, hold and release runs, drain
and stop nodes, reload edited definitions and add runs.

Run verbs are journalled with the runs the server says it acted on (`verbs.jsonl`), so the checker
knows which runs may end `cancelled` (the last verb that touched them was a cancel).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Callable

from juqueue.soak.faults import live_nodes
from juqueue.soak.server import SoakServer
from juqueue.soak.workload import Workload

DONE_KEYS = {"cancel": "cancelled", "requeue": "requeued", "hold": "held", "release": "released", "resume": "resumed"}


class UserActions:
    def __init__(self, server: SoakServer, workload: Workload, def_dir: Path, verbs_log: Path, rng: random.Random) -> None:
        self.server, self.workload, self.def_dir, self.rng = server, workload, def_dir, rng
        self.verbs_log = verbs_log

    def injectors(self) -> dict[str, Callable[[], str | None]]:
        return {
            "cancel": self.cancel, "requeue": self.requeue, "hold_release": self.hold_release,
            "drain_node": lambda: self.node_action("drain"), "stop_node": lambda: self.node_action("stop"),
            "reload_edit": self.reload_edit, "add_runs": self.add_runs,
        }

    def verb(self, verb: str, body: dict) -> list[str]:
        """POST /api/runs/<verb>; the runs it acted on (journalled)."""
        resp = self.server.api("POST", f"/api/runs/{verb}", json=body)
        resp.raise_for_status()
        done = list(resp.json().get(DONE_KEYS[verb], []))
        with open(self.verbs_log, "a") as out:
            out.write(json.dumps({"t": time.time(), "verb": verb, "runs": done}) + "\n")
        return done

    def _runs_with(self, *statuses: str) -> list[str]:
        resp = self.server.api("GET", "/api/runs", params={"status": list(statuses), "limit": 1000})
        resp.raise_for_status()
        return [r["global_id"] for r in resp.json()]

    def cancel(self) -> str | None:
        live = self._runs_with("queued", "running", "assigned")
        if not live:
            return None
        picked = self.rng.sample(live, min(len(live), self.rng.randint(1, 2)))
        return f"cancel {picked}: done {self.verb('cancel', {'ids': picked})}"

    def requeue(self) -> str | None:
        """Every failed and cancelled run again (by filter), in one call."""
        if not self._runs_with("failed", "cancelled"):
            return None
        done = self.verb("requeue", {"filter": {"statuses": ["failed", "cancelled"]}})
        return f"requeue by filter (failed, cancelled): {len(done)} runs"

    def hold_release(self) -> str | None:
        queued = self._runs_with("queued")
        if not queued:
            return None
        picked = self.rng.sample(queued, min(len(queued), 3))
        held = self.verb("hold", {"ids": picked})
        time.sleep(self.rng.uniform(1, 4))
        released = self.verb("release", {"ids": held}) if held else []
        return f"hold {held}, release {released}"

    def release_all_held(self) -> list[str]:
        return self.verb("release", {"status": "held"}) if self._runs_with("held") else []

    def node_action(self, action: str) -> str | None:
        nodes = live_nodes(self.server)
        if not nodes:
            return None
        node = self.rng.choice(nodes)
        resp = self.server.api("POST", f"/api/nodes/{node['name']}/{action}", json={"reason": "soak"})
        return f"{action} {node['name']} (runs {node.get('runs')}): {resp.status_code} {resp.json().get('detail', '')}"

    def _reload(self) -> dict:
        resp = self.server.api("POST", "/api/reload", params={"yes": "true"}, timeout=120)
        resp.raise_for_status()
        return resp.json()

    def reload_edit(self) -> str | None:
        gid = self.workload.edit_one()
        if gid is None:
            return None
        self.workload.write_definitions(self.def_dir)
        answer = self._reload()
        return f"edit {gid}, reload: updated {len(answer.get('updated', []))}, stopped {answer.get('stopped')}, errors {answer.get('errors')}"

    def add_runs(self) -> str:
        added = self.workload.add_wave(self.rng.randint(4, 12))
        self.workload.write_definitions(self.def_dir)
        answer = self._reload()
        return f"add {len(added)} runs, reload: added {len(answer.get('added', []))}, errors {answer.get('errors')}"
