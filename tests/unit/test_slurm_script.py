"""The job script: golden file for a cluster with every field set, quoting, directives."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from juqueue.backends.slurm_script import job_comment_for, job_name_for, render_job_script
from juqueue.definitions.models import ClusterSpec
from juqueue.errors import ConfigError

GOLDEN = Path(__file__).parent / "golden" / "slurm_job_full.sh"
WORK = Path("/p/scratch/proj/juqueue-work")


def full_cluster() -> ClusterSpec:
    return ClusterSpec(
        name="booster",
        type="slurm",
        num_slots=4,
        max_jobs=3,
        cpus_per_slot=12,
        cuda_devices_per_slot=1,
        partition="booster",
        account="proj-ml",
        qos="normal",
        time="1-00:00:00",
        cpus_per_task=48,
        memory="500G",
        gres="gpu:4",
        constraint="largedata",
        exclusive=True,
        extra_directives=["--hint=nomultithread", "#SBATCH --mail-type=NONE"],
        prologue=["module load Stages/2024", "module load CUDA"],
        env={"OMP_PROC_BIND": "true", "HF_HOME": "/p/scratch/proj/hf cache"},
        python="/p/project/proj/venv/bin/python",
        job_name="jq",
        signal_lead=300,
        poll_interval=45.0,
    )


def render(cluster: ClusterSpec, **kw: object) -> str:
    args: dict = dict(node="booster-3", token="a1b2c3d4", work_dir=WORK, log_path=WORK / ".juqueue/nodes/booster-3/job.log")
    args.update(kw)
    return render_job_script(cluster, **args)


def directives(script: str) -> list[str]:
    return [line for line in script.splitlines() if line.startswith("#SBATCH")]


def test_full_cluster_matches_golden_file_line_by_line() -> None:
    got = render(full_cluster()).splitlines()
    want = GOLDEN.read_text().splitlines()
    for number, (g, w) in enumerate(zip(got, want), start=1):
        assert g == w, f"line {number} differs from {GOLDEN.name}"
    assert len(got) == len(want)


def test_golden_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(GOLDEN)], check=True)


def test_minimal_cluster_has_only_the_fixed_directives() -> None:
    script = render(ClusterSpec(name="c", type="slurm"))
    assert directives(script) == [
        "#SBATCH --job-name=juqueue-booster-3-a1b2c3d4",
        "#SBATCH --comment=juqueue:a1b2c3d4",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
        f"#SBATCH --output={WORK}/.juqueue/nodes/booster-3/job.log",
        "#SBATCH --open-mode=append",
        "#SBATCH --signal=B:USR1@120",
    ]
    assert 'PYTHON=python3' in script.splitlines()


def test_python_argument_used_when_cluster_has_none() -> None:
    script = render(ClusterSpec(name="c", type="slurm"), python="/opt/venv/bin/python")
    assert "PYTHON=/opt/venv/bin/python" in script.splitlines()
    script = render(ClusterSpec(name="c", type="slurm", python="/w/wrap.sh"), python="/opt/venv/bin/python")
    assert "PYTHON=/w/wrap.sh" in script.splitlines()


def test_name_and_comment_carry_the_token() -> None:
    cluster = ClusterSpec(name="c", type="slurm", job_name="jq")
    assert job_name_for(cluster, "c-1", "tok") == "jq-c-1-tok"
    assert job_comment_for("tok") == "juqueue:tok"


@pytest.mark.parametrize(
    "line, expected",
    [
        ("--hint=nomultithread", "#SBATCH --hint=nomultithread"),
        ("#SBATCH --hint=nomultithread", "#SBATCH --hint=nomultithread"),
        ("  --reservation=maint  ", "#SBATCH --reservation=maint"),
        ("#SBATCH --mail-user=a@b.c", "#SBATCH --mail-user=a@b.c"),
    ],
)
def test_extra_directives_with_or_without_prefix(line: str, expected: str) -> None:
    script = render(ClusterSpec(name="c", type="slurm", extra_directives=[line]))
    assert directives(script)[-1] == expected


HOSTILE = ["a b", "x'; rm -rf ~; echo '", "$(touch /tmp/pwned)", "`id`", 'q"uote', "semi;colon", "*"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_quoted(value: str, tmp_path: Path) -> None:
    cluster = ClusterSpec(
        name=value, type="slurm", partition=value, account=value, env={"V": value}, python=value
    )
    script = render(cluster, work_dir=tmp_path / value)
    lines = script.splitlines()
    assert f"#SBATCH --partition={shlex.quote(value)}" in lines
    assert f"#SBATCH --account={shlex.quote(value)}" in lines
    assert f"export V={shlex.quote(value)}" in lines
    assert f"PYTHON={shlex.quote(value)}" in lines
    assert f"export JUQUEUE_WORK_DIR={shlex.quote(str(tmp_path / value))}" in lines
    # bash reads the exports back exactly, without running anything
    head = "\n".join(line for line in lines if line.startswith(("export V=", "PYTHON=", "export JUQUEUE_WORK_DIR=")))
    out = subprocess.run(
        ["bash", "-c", head + '\nprintf "%s\\n" "$V" "$PYTHON" "$JUQUEUE_WORK_DIR"'],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout.splitlines()
    assert out == [value, value, str(tmp_path / value)]
    assert not Path("/tmp/pwned").exists()


@pytest.mark.parametrize("field", ["partition", "account", "gres", "time"])
def test_newline_in_a_directive_value_is_refused(field: str) -> None:
    cluster = ClusterSpec(name="c", type="slurm", **{field: "x\n#SBATCH --account=victim"})
    with pytest.raises(ConfigError, match=field):
        render(cluster)


def test_newline_in_extra_directive_is_refused() -> None:
    cluster = ClusterSpec(name="c", type="slurm", extra_directives=["--hint=x\necho hi"])
    with pytest.raises(ConfigError, match="extra_directives"):
        render(cluster)


def test_bad_env_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a valid environment variable name"):
        render(ClusterSpec(name="c", type="slurm", env={"A B": "x"}))


def test_no_secret_and_worker_flags() -> None:
    script = render(full_cluster())
    assert "redis://" not in script and "password" not in script.lower()
    assert (
        '"$PYTHON" -m juqueue.workers.node --work-dir "$JUQUEUE_WORK_DIR" --node "$JUQUEUE_NODE" --cluster booster &'
        in script.splitlines()
    )
