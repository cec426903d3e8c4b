"""What a run gets, as 0.0.15 gave it: `prepend_script` lines, then the venv (`~`/`$HOME`
expanded on the node), then `exec` the command; a venv that cannot be activated fails the
attempt with the reason; RUN_ID/EXPERIMENT_ID; one CUDA device per slot without
`cuda_devices_per_slot`. The wrapper is run by a real bash; the runtime without a broker."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import redis

from juqueue.definitions.models import ClusterSpec
from juqueue.paths import WorkDir
from juqueue.workers import command
from juqueue.workers.control import NodeControl
from juqueue.workers.runtime import NodeConfig, NodeRuntime
from juqueue.workers.slots import parse_nvidia_smi_list, slot_env


def fake_venv(path: Path) -> Path:
    """A directory shaped like a venv: bin/activate puts bin/ first on PATH; bin/python3 says so."""
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "activate").write_text(f'VIRTUAL_ENV="{path}"\nexport VIRTUAL_ENV\nPATH="$VIRTUAL_ENV/bin:$PATH"\nexport PATH\n')
    py = path / "bin" / "python3"
    py.write_text("#!/bin/sh\necho \"venv python3 $*\"\n")
    py.chmod(py.stat().st_mode | stat.S_IEXEC)
    return path


def run_wrapped(spec: dict, env: dict[str, str]) -> subprocess.CompletedProcess:
    argv = command.build_argv(spec, env)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)


# ---- order and expansion ----------------------------------------------------------------------
def test_prepend_lines_come_before_the_venv(tmp_path):
    home = tmp_path / "home"
    fake_venv(home / "venvs" / "v")
    env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    # a prepend line that puts /usr/bin first (as `module load Python` would) must not win
    spec = {"cmd": ["python3", "-V"], "venv": "~/venvs/v", "prepend_script": ["export PATH=/usr/bin:$PATH"]}
    out = run_wrapped(spec, env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "venv python3 -V"
    script = command.build_argv(spec, env)[2]
    assert script.index("export PATH=/usr/bin") < script.index("activate") < script.index('exec "$@"')


@pytest.mark.parametrize("venv", ["~/venvs/v", "$HOME/venvs/v", "${HOME}/venvs/v"])
def test_home_in_venv_expands_against_the_runs_home(tmp_path, venv):
    home = tmp_path / "home"
    fake_venv(home / "venvs" / "v")
    out = run_wrapped({"cmd": ["sh", "-c", 'echo "$VIRTUAL_ENV"'], "venv": venv}, {"HOME": str(home), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(home / "venvs" / "v")


def test_expand_home():
    assert command.expand_home("~", "/h") == "/h"
    assert command.expand_home("~/a/b", "/h") == "/h/a/b"
    assert command.expand_home("$HOME/a:${HOME}/b", "/h") == "/h/a:/h/b"
    assert command.expand_home("$HOMEDIR/a", "/h") == "$HOMEDIR/a"  # another variable
    assert command.expand_home("/abs/~x", "/h") == "/abs/~x"
    assert command.expand_home("~root/x", "/h") == os.path.expanduser("~root") + "/x"


def test_python_search_path_expands_and_goes_first():
    env = command.build_env({"HOME": "/h", "PYTHONPATH": "/old"}, {"python_search_path": ["~/src", "$HOME/lib", "/abs"]}, {})
    assert env["PYTHONPATH"] == "/h/src:/h/lib:/abs:/old"


def test_no_wrapper_without_venv_or_lines():
    assert command.build_argv({"cmd": ["echo", 1]}, {}) == ["echo", "1"]


def test_a_venv_that_cannot_be_activated_fails_with_the_reason(tmp_path):
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = run_wrapped({"cmd": ["sh", "-c", "echo ran"], "venv": "~/missing"}, env)
    assert out.returncode == command.VENV_EXIT_CODE == 127
    assert out.stdout == ""  # the command never ran: no silent fallback
    assert "juqueue: cannot activate the venv '~/missing'" in out.stderr
    assert f"{tmp_path}/missing/bin/activate does not exist" in out.stderr
    broken = tmp_path / "broken"
    (broken / "bin").mkdir(parents=True)
    (broken / "bin" / "activate").write_text("return 3\n")
    out = run_wrapped({"cmd": ["sh", "-c", "echo ran"], "venv": str(broken)}, env)
    assert out.returncode == 127 and out.stdout == ""
    assert "sourcing" in out.stderr and "(exit code 3)" in out.stderr
    # the worker reads the wrapper's line back for the run's reason
    log = tmp_path / "attempt-1.err"
    log.write_text("noise from a prepend line\n" + out.stderr)
    assert command.venv_failure(log) == f"cannot activate the venv '{broken}': sourcing {broken}/bin/activate failed (exit code 3)"
    log.write_text("a command that failed on its own\n")
    assert command.venv_failure(log) is None and command.venv_failure(tmp_path / "none") is None


# ---- the runtime's per-slot environment ---------------------------------------------------------
def runtime(tmp_path: Path, monkeypatch, cuda_env: str | None, **cluster) -> NodeRuntime:
    if cuda_env is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", cuda_env)
    spec = ClusterSpec(name="c", type="local", num_slots=4, **cluster)
    config = NodeConfig(node="n1", token="t", namespace="ns", version="x", cluster=spec)
    return NodeRuntime(WorkDir(tmp_path), config, redis.Redis(host="127.0.0.1", port=1))  # never contacted


def env_of(rt: NodeRuntime, spec: dict, slots: tuple[int, ...] | int) -> tuple[dict[str, str], list[int] | None]:
    return slot_env(spec, slots, rt.node, rt.cluster, rt.resources)


def spec(cuda: bool = False) -> dict:
    return {"global_id": "sweep@lr0.1", "attempt": 2, "run_dir": "/w/runs/sweep/lr0.1", "cuda": cuda}


def test_run_id_and_experiment_id(tmp_path, monkeypatch):
    rt = runtime(tmp_path, monkeypatch, None)
    extra, _ = env_of(rt, spec(), 0)
    assert extra["RUN_ID"] == "lr0.1" and extra["EXPERIMENT_ID"] == "sweep"
    assert extra["JUQUEUE_RUN_ID"] == "sweep@lr0.1" and extra["JUQUEUE_ATTEMPT"] == "2"
    assert "CUDA_VISIBLE_DEVICES" not in extra
    env = command.build_env({"RUN_ID": "worker's"}, {"env": {"EXPERIMENT_ID": "user's"}}, extra)
    assert env["RUN_ID"] == "lr0.1" and env["EXPERIMENT_ID"] == "sweep"


def test_cuda_without_per_slot_takes_the_jobs_devices_one_per_slot(tmp_path, monkeypatch):
    rt = runtime(tmp_path, monkeypatch, "4,7")
    assert [env_of(rt, spec(cuda=True), i)[0]["CUDA_VISIBLE_DEVICES"] for i in (0, 1)] == ["4", "7"]
    with pytest.raises(ValueError, match="slot 2 needs 1 CUDA devices.*only 2: 4,7"):
        env_of(rt, spec(cuda=True), 2)
    assert "CUDA_VISIBLE_DEVICES" not in env_of(rt, spec(cuda=False), 0)[0]  # the job's variable, untouched


def test_cuda_with_an_empty_variable_has_no_devices(tmp_path, monkeypatch):
    rt = runtime(tmp_path, monkeypatch, "")
    with pytest.raises(ValueError, match="only 0"):
        env_of(rt, spec(cuda=True), 0)


def test_cuda_per_slot_setting_still_wins(tmp_path, monkeypatch):
    rt = runtime(tmp_path, monkeypatch, "0,1,2,3", cuda_devices_per_slot=2)
    assert env_of(rt, spec(cuda=True), 1)[0]["CUDA_VISIBLE_DEVICES"] == "2,3"


def test_cuda_unset_asks_nvidia_smi(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        "echo 'GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaa)'\n"
        "echo '  MIG 1g.5gb Device 0: (UUID: MIG-bbbb)'\n"
        "echo 'GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-cccc)'\n"
        f"echo x >> {tmp_path}/calls\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    rt = runtime(tmp_path, monkeypatch, None)
    assert [env_of(rt, spec(cuda=True), i)[0]["CUDA_VISIBLE_DEVICES"] for i in (0, 1)] == ["0", "1"]
    with pytest.raises(ValueError, match="nvidia-smi"):
        env_of(rt, spec(cuda=True), 2)
    assert (tmp_path / "calls").read_text().count("x") == 1  # asked once


def test_cuda_unset_without_nvidia_smi_has_no_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi here
    rt = runtime(tmp_path, monkeypatch, None)
    with pytest.raises(ValueError, match="only 0: none"):
        env_of(rt, spec(cuda=True), 0)


def test_parse_nvidia_smi_list():
    text = ("GPU 0: Tesla V100-SXM2-16GB (UUID: GPU-1)\nGPU 1: Tesla V100-SXM2-16GB (UUID: GPU-2)\n"
            "  MIG 3g.20gb Device 0: (UUID: MIG-3)\nNo devices were found\n\n")
    assert parse_nvidia_smi_list(text) == ["0", "1"]
    assert parse_nvidia_smi_list("") == [] and parse_nvidia_smi_list("No devices were found") == []


def test_the_job_scripts_stop_file_shuts_the_worker_down_at_once(tmp_path, monkeypatch):
    """scancel: the job script's TERM trap writes nodes/<node>/stopping before Celery may have
    handled its own TERM; the control loop's check makes the worker stop (its heartbeats say so)."""
    rt = runtime(tmp_path, monkeypatch, None)
    NodeControl(rt)._check_stop_file()
    assert not rt.stopping
    node_dir = WorkDir(tmp_path).node_dir("n1")
    node_dir.mkdir(parents=True, exist_ok=True)
    (node_dir / "stopping").write_text("")
    NodeControl(rt)._check_stop_file()
    assert rt.stopping and rt.draining
