"""The evaluator subprocess: JSON result, user prints, sys.exit, endless loops, crashes."""

import json
import subprocess
import sys
import time
from pathlib import Path

from juqueue.definitions.subprocess_eval import load_definitions

GOOD = "experiment: good\ncluster: local\ncmd: [echo, hi]\nid: only\n"
REPO = Path(__file__).resolve().parents[2]


def make(tmp_path: Path, name: str, body: str) -> Path:
    (tmp_path / "experiments").mkdir(exist_ok=True)
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "experiments" / name).write_text(body)
    return tmp_path


def test_subprocess_result_and_user_prints(tmp_path):
    make(tmp_path, "noisy.py", "import os\nprint('hello from user code')\nos.system('echo from a child')\n")
    res = load_definitions(tmp_path, {"local"}, timeout_s=30)
    assert not res.aborted
    assert [r.global_id for r in res.runs] == ["good@only"]
    assert res.failed_files == ["experiments/noisy.py"]  # defines no class Experiment
    assert "no class named Experiment" in res.errors[0].message


def test_main_prints_json_only(tmp_path):
    make(tmp_path, "noisy.py", "print('{not json')\n")
    proc = subprocess.run([sys.executable, "-m", "juqueue.definitions.evaluate", str(tmp_path), "--clusters", "local"],
                          capture_output=True, text=True, cwd=REPO, timeout=30)
    assert proc.returncode == 0
    data = json.loads(proc.stdout)
    assert data["experiments"] == {"good": "good.yaml"}
    assert "{not json" in proc.stderr


def test_sys_exit_is_an_error_of_that_file(tmp_path):
    make(tmp_path, "quit.py", "import sys\nsys.exit(0)\n")
    res = load_definitions(tmp_path, {"local"}, timeout_s=30)
    assert not res.aborted and res.failed_files == ["experiments/quit.py"]
    assert "sys.exit(0)" in res.errors[0].message
    assert [r.global_id for r in res.runs] == ["good@only"]


PY_GOOD = """
from juqueue.definitions.original_api import ExperimentDef, RunDef


class Experiment(ExperimentDef):
    name = "pygood"

    @property
    def runs(self):
        return [RunDef(id="one", experiment_name="pygood", cluster="local", cmd=["true"])]
"""


def test_an_endless_loop_fails_its_file_alone_and_names_it(tmp_path):
    make(tmp_path, "loop.py", "while True:\n    pass\n")
    (tmp_path / "experiments" / "zgood.py").write_text(PY_GOOD)
    res = load_definitions(tmp_path, {"local"}, timeout_s=2)
    assert not res.aborted
    assert res.failed_files == ["experiments/loop.py"]
    assert res.errors[0].file == "experiments/loop.py" and "longer than 2 s" in res.errors[0].message
    assert sorted(r.global_id for r in res.runs) == ["good@only", "pygood@one"]  # the files before and after it


def test_sleeping_and_flooding_files_are_each_named(tmp_path):
    make(tmp_path, "asleep.py", "import time\ntime.sleep(3600)\n")
    (tmp_path / "experiments" / "flood.py").write_text("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n")
    (tmp_path / "experiments" / "zgood.py").write_text(PY_GOOD)
    res = load_definitions(tmp_path, {"local"}, timeout_s=2)
    assert not res.aborted
    assert sorted(res.failed_files) == ["experiments/asleep.py", "experiments/flood.py"]
    assert all("longer than 2 s" in e.message for e in res.errors), res.errors
    assert sorted(r.global_id for r in res.runs) == ["good@only", "pygood@one"]


def test_hard_crash_fails_its_file_with_the_stderr_tail(tmp_path):
    make(tmp_path, "die.py", "import os, sys\nsys.stderr.write('dying now\\n'); sys.stderr.flush()\nos._exit(7)\n")
    (tmp_path / "experiments" / "zgood.py").write_text(PY_GOOD)
    res = load_definitions(tmp_path, {"local"}, timeout_s=30)
    assert not res.aborted and res.failed_files == ["experiments/die.py"]
    assert "exit code 7" in res.errors[0].message and "dying now" in res.errors[0].message
    assert sorted(r.global_id for r in res.runs) == ["good@only", "pygood@one"]


def _cmdline_has(proc: Path, text: str) -> bool:
    try:
        return text.encode() in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def test_children_of_a_killed_file_die_with_it(tmp_path):
    marker = tmp_path / "child-alive"
    make(tmp_path, "spawn.py", f"import subprocess, time\nsubprocess.Popen(['sh', '-c', 'sleep 3; touch {marker}'])\n"
                               "time.sleep(3600)\n")
    res = load_definitions(tmp_path, {"local"}, timeout_s=1)
    assert res.failed_files == ["experiments/spawn.py"]
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline_has(p, str(marker))]
    assert not left, "a process started by a killed definition file outlived it"


def test_a_missing_def_dir_aborts(tmp_path):
    res = load_definitions(tmp_path / "nope", {"local"}, timeout_s=5)
    assert res.aborted and "does not exist" in res.errors[0].message


def test_unknown_cluster_via_subprocess(tmp_path):
    (tmp_path / "good.yaml").write_text(GOOD)
    res = load_definitions(tmp_path, {"other"}, timeout_s=30)
    assert res.failed_files == ["good.yaml"] and "unknown cluster 'local'" in res.errors[0].message
    assert res.failed_experiments == ["good"]
