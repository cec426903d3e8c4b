"""Wait for the machine set-up that `scripts/test.sh` runs beside the tests.

test.sh installs Chromium and starts the test SLURM in the background while the first tests run
and names a file in `JUQUEUE_TEST_SETUP_DONE` that it writes when done. Tests that need SLURM or
the browser call `wait_for_machine_setup()` before they look for `sbatch` or `chromium`; run
without test.sh (no variable), it returns at once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

SETUP_TIMEOUT_S = 900.0  # apt and a cold SLURM start on a fresh machine


def wait_for_machine_setup(timeout: float = SETUP_TIMEOUT_S) -> None:
    done = os.environ.get("JUQUEUE_TEST_SETUP_DONE")
    if not done:
        return
    deadline = time.monotonic() + timeout
    while not Path(done).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
