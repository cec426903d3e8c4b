"""The worker runs on compute nodes from the same installation as `serve`, but never imports
the controller's side (nodes never open the store): a fresh interpreter shows what it loads."""

from __future__ import annotations

import json
import subprocess
import sys

CONTROLLER_SIDE = ("juqueue.controller", "juqueue.store", "juqueue.backends", "juqueue.api", "juqueue.serve",
                   "juqueue.cli", "sqlmodel", "sqlalchemy", "fastapi")


def test_the_worker_loads_nothing_of_the_controllers_side():
    code = ("import json, sys, juqueue.workers.node, juqueue.workers.app, juqueue.workers.control;"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = json.loads(out.stdout)
    assert [m for m in loaded if m.startswith(CONTROLLER_SIDE)] == []
    assert "juqueue.workers.slots" in loaded and "juqueue.policy.slots" not in loaded
