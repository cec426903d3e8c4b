"""What a `serve` SIGKILLed at the wrong moment leaves for its restart (found by the chaos soak):
a run whose `started` event is read only after the restart ended its node, and a local worker
whose pid never reached the store."""

from __future__ import annotations

import subprocess
import sys
import time

from controller_fakes import run_specs
from juqueue.backends.local import LocalBackend
from juqueue.definitions.models import ClusterSpec
from juqueue.paths import WorkDir
from juqueue.processes import pid_alive
from juqueue.status import RunStatus


def test_a_start_read_after_its_attempt_was_ended_kills_the_process_and_leaves_the_run_queued(make):
    h = make([ClusterSpec(name="c", type="local", num_slots=1, max_jobs=1)], run_specs(1, "c"))
    h.step()
    (node,) = h.nodes_of("c")
    h.heartbeat(node)
    h.step()
    assert h.status("exp@r0") == RunStatus.ASSIGNED.value  # published; serve is killed here
    backend = h.backends["local"]
    h.restart()  # ends the local node; the attempt had not started as far as the store knows
    assert h.status("exp@r0") == RunStatus.QUEUED.value and backend.killed == []
    h.started("exp@r0")  # the old worker's `started`, read from the stream only now
    h.step()
    (pid, pstart), = backend.killed
    assert pid > 0
    row = h.run("exp@r0")
    assert row.status != RunStatus.RUNNING.value and row.retries_used == 0
    assert h.store.attempts_of("exp@r0")[0].pid is None  # the ended attempt is not rewritten


def test_a_local_worker_whose_pid_the_store_lacks_is_found_by_its_command_line(tmp_path):
    work = WorkDir(tmp_path / "w")
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "-m", "juqueue.workers.node",
            "--work-dir", str(work.root), "--node", "c-1", "--cluster", "c"]
    other = subprocess.Popen([*argv[:-4], "--node", "c-2", "--cluster", "c"], start_new_session=True)
    proc = subprocess.Popen(argv, start_new_session=True)
    try:
        time.sleep(0.3)
        LocalBackend(work).stop_node("c-1", None, None)
        proc.wait(10)
        assert not pid_alive(proc.pid, zombie_is_dead=True)
        assert other.poll() is None  # another node's worker is left alone
    finally:
        for p in (proc, other):
            p.kill()
            p.wait()
