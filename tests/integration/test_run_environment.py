"""What a run gets, end to end with a real `juqueue serve` on a `local` cluster, as 0.0.15 gave it:
the `prepend_script` lines, then the venv (`~`/`$HOME` expanded on the node), then the command;
a venv that cannot be activated fails the attempt with the reason; RUN_ID and EXPERIMENT_ID;
`ExperimentDef.path` and another run's `path` in commands; one CUDA device per slot from the
node's CUDA_VISIBLE_DEVICES when the cluster sets no `cuda_devices_per_slot`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import Server, write_defs
from juqueue.paths import WorkDir

LOCAL = """
local:
  type: local
  num_slots: 4
  max_jobs: 1
  idle_timeout: 60
  grace_period: 5
  heartbeat_interval: 1
  heartbeat_timeout: 20
"""

ENVS = """
from juqueue import ExecutorDef, ExperimentDef, RunDef

REPORT = ("import os, sys; print('prefix', sys.prefix); print('ids', os.environ['RUN_ID'], "
          "os.environ['EXPERIMENT_ID'], os.environ['JUQUEUE_RUN_ID']); print('pythonpath', os.environ['PYTHONPATH'])")


class Experiment(ExperimentDef):
    name = "envs"

    @property
    def runs(self):
        venv_tilde = RunDef(id="venv_tilde", experiment_name=self.name, cluster="local",
                            cmd=["python3", "-c", REPORT],
                            executor=ExecutorDef(venv="~/venvs/jq", python_search_path=["~/lib"],
                                                 prepend_script=["export PATH=/usr/bin:$PATH"]))
        venv_home = RunDef(id="venv_home", experiment_name=self.name, cluster="local",
                           cmd=["sh", "-c", "command -v python3"], executor=ExecutorDef(venv="$HOME/venvs/jq"))
        no_venv = RunDef(id="no_venv", experiment_name=self.name, cluster="local",
                         cmd=["sh", "-c", "echo the command ran"], executor=ExecutorDef(venv="~/venvs/missing"))
        writer = RunDef(id="writer", experiment_name=self.name, cluster="local",
                        cmd=["sh", "-c", 'echo written > "$1"', "sh"])
        writer.cmd.append(writer.path / "out.txt")
        reader = RunDef(id="reader", experiment_name=self.name, cluster="local", depends_on=[writer],
                        cmd=["sh", "-c", 'cat "$1"; echo "$2 $3"', "sh", writer.path / "out.txt"],
                        parameters={"xp_dir": self.path})
        return [venv_tilde, venv_home, no_venv, writer, reader]
"""


def out_log(work: Path, exp: str, run: str, stream: str = "out") -> str:
    return WorkDir(work).attempt_log(exp, run, 1, stream).read_text()


def test_venv_prepend_order_run_ids_and_paths(workspace):
    home = workspace / "home"
    venv = home / "venvs" / "jq"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (home / "lib").mkdir()
    defs = write_defs(workspace / "defs", LOCAL, {"experiments/envs.py": ENVS})
    work = workspace / "work"
    server = Server(defs, work, env={"HOME": str(home)}).start(tick=0.5)
    try:
        runs = {r["id"]: r for r in server.wait_all_final(timeout=120)}
        # the venv's python wins over the prepend line's PATH (prepend first, then the venv)
        assert runs["venv_tilde"]["status"] == "completed", runs["venv_tilde"]
        lines = dict(line.split(" ", 1) for line in out_log(work, "envs", "venv_tilde").splitlines())
        assert os.path.realpath(lines["prefix"]) == os.path.realpath(venv), lines
        assert lines["ids"] == "venv_tilde envs envs@venv_tilde"
        assert lines["pythonpath"].split(os.pathsep)[0] == str(home / "lib")
        assert runs["venv_home"]["status"] == "completed", runs["venv_home"]
        assert out_log(work, "envs", "venv_home").strip() == str(venv / "bin" / "python3")

        # a venv that cannot be activated: the attempt fails, the command never runs, the reason is recorded
        bad = server.run("envs@no_venv")
        assert bad["status"] == "failed" and bad["exit_code"] == 127, bad
        assert bad["attempts"][0]["end_reason"] == "exited", bad["attempts"]
        err = server.api("GET", "/api/runs/envs@no_venv/logs", params={"stream": "err"}).json()["text"]
        assert "juqueue: cannot activate the venv '~/venvs/missing'" in err, err
        assert f"{home}/venvs/missing/bin/activate does not exist" in err, err
        assert "the command ran" not in out_log(work, "envs", "no_venv")
        # ... and the run's reason says why, not only its stderr log
        assert bad["reason"] == (f"exit code 127: cannot activate the venv '~/venvs/missing': "
                                 f"{home}/venvs/missing/bin/activate does not exist"), bad

        # another run's `path` names that run's directory; ExperimentDef.path the experiment's
        assert runs["reader"]["status"] == "completed", runs["reader"]
        assert out_log(work, "envs", "reader").splitlines() == ["written", f"--xp-dir {WorkDir(work).run_dir('envs', 'reader').parent}"]
    finally:
        server.stop()


GPU2 = """
gpu:
  type: local
  num_slots: 2
  max_jobs: 1
  idle_timeout: 60
  grace_period: 5
  heartbeat_interval: 1
  heartbeat_timeout: 20
"""

CUDA_RUNS = """
experiment: cuda
cluster: gpu
executor: {cuda: true}
cmd: ["sh", "-c", 'echo "$CUDA_VISIBLE_DEVICES $JUQUEUE_SLOT"; sleep 3']
runs:
  - id: first
  - id: second
"""


def test_cuda_without_devices_per_slot_gets_one_device_per_slot(workspace):
    defs = write_defs(workspace / "defs", GPU2, {"cuda.yaml": CUDA_RUNS})
    work = workspace / "work"
    server = Server(defs, work, env={"CUDA_VISIBLE_DEVICES": "4,7"}).start(tick=0.5)
    try:
        runs = server.wait_all_final(timeout=90)
        assert {r["status"] for r in runs} == {"completed"}, runs
        seen = sorted(out_log(work, "cuda", r["id"]).split() for r in runs)
        assert seen == [["4", "0"], ["7", "1"]], seen  # slot 0 -> 4, slot 1 -> 7 (ran side by side)
    finally:
        server.stop()
