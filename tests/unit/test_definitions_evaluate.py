"""The evaluator subprocess: JSON result, user prints, sys.exit, endless loops, crashes."""

import json
import subprocess
import sys
import time
from pathlib import Path

from juqueue.definitions.evaluate import load_definitions

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


def test_endless_loop_times_out(tmp_path):
    make(tmp_path, "loop.py", "while True:\n    pass\n")
    start = time.monotonic()
    res = load_definitions(tmp_path, {"local"}, timeout_s=2)
    assert time.monotonic() - start < 10
    assert res.aborted and res.runs == []
    assert str(tmp_path.resolve()) == res.errors[0].file
    assert "longer than 2 s" in res.errors[0].message


def test_hard_crash_reports_stderr_tail(tmp_path):
    make(tmp_path, "die.py", "import os, sys\nsys.stderr.write('dying now\\n'); sys.stderr.flush()\nos._exit(7)\n")
    res = load_definitions(tmp_path, {"local"}, timeout_s=30)
    assert res.aborted
    assert "exit code 7" in res.errors[0].message and "dying now" in res.errors[0].message


def test_unknown_cluster_via_subprocess(tmp_path):
    (tmp_path / "good.yaml").write_text(GOOD)
    res = load_definitions(tmp_path, {"other"}, timeout_s=30)
    assert res.failed_files == ["good.yaml"] and "unknown cluster 'local'" in res.errors[0].message
    assert res.failed_experiments == ["good"]
