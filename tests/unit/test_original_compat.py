"""A user of the original JuQueue (0.0.15) switches without surprises: its module paths,
`DefUtils`, `PathVars`, the `Experiment` class rule, `ExperimentDef.path`, and files written
the way its users wrote them load with the same runs and the same argv (the run's directory
aside). Expected argv are written by hand from reading the original's source."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import juqueue
from juqueue import DefUtils, ExecutorDef, ExperimentDef, RunDef
from juqueue.definitions import placeholders as ph
from juqueue.definitions.evaluate import evaluate_def_dir
from juqueue.paths import WorkDir

CLUSTERS = {"local", "gpu"}

# SHA-512 of "abc" (FIPS 180-2, appendix C.1), and of "" (the empty string).
SHA512_ABC = ("ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
              "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
SHA512_EMPTY = ("cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
                "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e")


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# ---- DefUtils -------------------------------------------------------------------------------
def test_unique_hash_is_the_sha512_prefix():
    assert DefUtils.unique_hash("abc") == SHA512_ABC[:24]
    assert DefUtils.unique_hash("abc", length=128) == SHA512_ABC
    assert DefUtils.unique_hash("abc", 1) == "d"
    assert DefUtils.unique_hash("") == SHA512_EMPTY[:24]
    # UTF-8, not another encoding: "é" is the two bytes c3 a9
    import hashlib
    assert DefUtils.unique_hash("é", 16) == hashlib.sha512(b"\xc3\xa9").hexdigest()[:16]


@pytest.mark.parametrize("length", [0, -1, 129, 1000])
def test_unique_hash_length_bounds(length):
    with pytest.raises(ValueError):
        DefUtils.unique_hash("abc", length)


def test_original_module_paths_import_the_same_names():
    from juqueue.definitions.executor import ExecutorDef as E2
    from juqueue.definitions.experiment import ExperimentDef as X2
    from juqueue.definitions.path import PathDef, PathVars
    from juqueue.definitions.run import RunDef as R2
    from juqueue.definitions.utils import unique_hash
    import juqueue.definitions.utils as utils_module

    assert E2 is ExecutorDef and X2 is ExperimentDef and R2 is RunDef
    assert DefUtils is utils_module and unique_hash is DefUtils.unique_hash
    assert "DefUtils" in juqueue.__all__
    assert str(PathVars.WORK_DIR) == "{work_dir}" and isinstance(PathVars.WORK_DIR, PathDef)
    assert str(PathVars.RUN_DIR) == "{run_dir}" and str(PathVars.LOG_DIR) == "{log_dir}"


# ---- paths and parsed_cmd ---------------------------------------------------------------------
def _run(rid="r", exp="e", **kw):
    base = dict(id=rid, experiment_name=exp, cluster="local", cmd=["prog"])
    base.update(kw)
    return RunDef(**base)


def test_run_paths_as_in_the_original():
    r = _run()
    assert str(r.metadata_path) == str(r.path / "juqueue-run.json")
    work = WorkDir(Path("/w"))
    own = _run(cmd=["ls", r.path, r.log_path, r.metadata_path])
    assert own.parsed_cmd(Path("/w")) == ["ls", "/w/e/r", "/w/e/r/logs", "/w/e/r/juqueue-run.json"]
    assert own.to_spec().cmd == ["ls", "{run_dir}", "{log_dir}", "{run_dir}/juqueue-run.json"]
    assert ph.resolve("{log_dir}", work, "e", "r") == str(work.log_dir("e", "r"))


def test_another_runs_path_names_that_run():
    a = _run("a")
    b = _run("b", cmd=["cat", a.path / "out.txt"], parameters={"logs": a.log_path}, depends_on=[a])
    assert b.to_spec().cmd == ["cat", "{run_dir:e@a}/out.txt", "--logs", "{log_dir:e@a}"]
    assert b.parsed_cmd("/w") == ["cat", "/w/e/a/out.txt", "--logs", "/w/e/a/logs"]
    other = _run("x", exp="other")
    c = _run("c", cmd=["cat", other.path / "f"])
    assert c.parsed_cmd("/w") == ["cat", "/w/other/x/f"]


def test_work_dir_placeholder_and_parsed_cmd_without_work_dir():
    from juqueue.definitions.path import PathVars
    r = _run(cmd=["ls", PathVars.WORK_DIR / "shared" / "data"], parameters={"out": PathVars.WORK_DIR})
    assert r.parsed_cmd() == ["ls", "{work_dir}/shared/data", "--out", "{work_dir}"]
    assert r.parsed_cmd(work_dir=Path("/w")) == ["ls", "/w/shared/data", "--out", "/w"]


def test_forked_template_paths_are_the_forks_own():
    tpl = RunDef.create_abstract(experiment_name="e", cluster="local", cmd=["x"])
    tpl.cmd.append(tpl.path / "ckpt")
    assert tpl.fork("f1").to_spec().cmd == ["x", "{run_dir}/ckpt"]


def test_placeholder_encoding_survives_odd_ids():
    work = WorkDir(Path("/w"))
    odd = _run("a}b{c:d", exp="x%y")
    text = str(odd.path / "f")
    assert ph.resolve(text, work, "e", "r") == "/w/x%y/a}b{c:d/f"
    assert ph.resolve("{unknown} {run_dir:broken}", work, "e", "r") == "{unknown} {run_dir:broken}"
    assert ph.resolve("{experiment_dir}/{experiment_dir:other}", work, "e", "r") == "/w/e//w/other"


class _Xp(ExperimentDef):
    name = "sweep"
    runs = []


def test_experiment_path_is_the_experiment_directory():
    xp = _Xp()
    r = _run("r1", exp="sweep", parameters={"xp_dir": xp.path}, cmd=["ls", xp.path / "r0"])
    assert r.to_spec().cmd == ["ls", "{experiment_dir}/r0", "--xp-dir", "{experiment_dir}"]
    assert r.parsed_cmd("/w") == ["ls", "/w/sweep/r0", "--xp-dir", "/w/sweep"]
    # in another experiment's run it still names its own experiment
    assert _run("o", exp="other", cmd=[xp.path]).parsed_cmd("/w") == ["/w/sweep"]


def test_executor_fields_keep_placeholders_for_the_publisher():
    ex = ExecutorDef(env={"OUT": _run().path / "o"}, python_search_path=[_Xp().path / "lib"],
                     prepend_script=[f"cd {_run().path}"], venv="~/venvs/torch")
    spec = _run(exp="e", executor=ex).to_spec().executor
    assert spec.env == {"OUT": "{run_dir}/o"} and spec.prepend_script == ["cd {run_dir}"]
    assert spec.python_search_path == ["{experiment_dir:sweep}/lib"] and spec.venv == "~/venvs/torch"


# ---- the Experiment class rule ----------------------------------------------------------------
def test_only_the_class_named_experiment_loads(tmp_path):
    write(tmp_path, "experiments/two.py", """
        from juqueue import ExperimentDef, RunDef

        class Helper(ExperimentDef):
            name = "helper"
            @property
            def runs(self):
                return [RunDef(id="h", experiment_name="helper", cluster="local", cmd=["true"])]

        class Experiment(ExperimentDef):
            name = "main"
            @property
            def runs(self):
                return [RunDef(id="m", experiment_name="main", cluster="local", cmd=["true"])]
    """)
    res = evaluate_def_dir(tmp_path, CLUSTERS)
    assert res.errors == []
    assert res.experiments == {"main": "experiments/two.py"}
    assert [r.global_id for r in res.runs] == ["main@m"]


def test_no_experiment_class_is_a_clear_error(tmp_path):
    write(tmp_path, "experiments/misnamed.py", """
        from juqueue import ExperimentDef, RunDef

        class MyExperiment(ExperimentDef):
            name = "mine"
            runs = []
    """)
    write(tmp_path, "experiments/abstract.py", """
        from abc import abstractmethod
        from juqueue import ExperimentDef

        class Experiment(ExperimentDef):
            name = "abs"
            @property
            @abstractmethod
            def runs(self): ...
    """)
    res = evaluate_def_dir(tmp_path, CLUSTERS)
    assert sorted(res.failed_files) == ["experiments/abstract.py", "experiments/misnamed.py"]
    msgs = {e.file: e.message for e in res.errors}
    assert "no class named Experiment" in msgs["experiments/misnamed.py"]
    assert "MyExperiment" in msgs["experiments/misnamed.py"]
    assert "abstract" in msgs["experiments/abstract.py"] and "runs" in msgs["experiments/abstract.py"]
    assert res.runs == []


# ---- files written as the original's users wrote them ---------------------------------------
COMMON = """
    from pathlib import Path
    from typing import List

    from juqueue import DefUtils, ExecutorDef, ExperimentDef, RunDef

    CLUSTER = "gpu"
    EXECUTOR = ExecutorDef(venv="~/venvs/torch", prepend_script=["module load Stages/2024 CUDA"],
                           python_search_path=["~/src/mylib"], env={"OMP_NUM_THREADS": "4"}, cuda=True)


    def run_id(params: dict) -> str:
        return DefUtils.unique_hash(repr(sorted(params.items())), 12)


    class SweepBase(ExperimentDef):
        \"\"\"Abstract: subclasses name the experiment and the learning rates.\"\"\"

        learning_rates: List[float] = []

        @property
        def runs(self) -> List[RunDef]:
            template = RunDef.create_abstract(experiment_name=self.name, cluster=CLUSTER,
                                              cmd=["python", "train.py"], executor=EXECUTOR)
            runs = []
            for lr in self.learning_rates:
                params = {"learning_rate": lr, "epochs": 10}
                run = template.fork(run_id(params))
                run.parameters = dict(params, out_dir=self.path / "results")
                runs.append(run)
            return runs
"""

SWEEP_A = """
    from experiments._common import SweepBase


    class Experiment(SweepBase):
        learning_rates = [0.1, 0.01]

        @property
        def name(self) -> str:
            return "sweep_a"
"""

SWEEP_B = """
    from typing import List

    from juqueue import ExperimentDef, RunDef
    from ._common import CLUSTER, SweepBase, run_id


    class Experiment(SweepBase):
        learning_rates = [0.5]

        @property
        def name(self) -> str:
            return "sweep_b"

        @property
        def runs(self) -> List[RunDef]:
            runs = super().runs
            evaluate = RunDef(id="evaluate", experiment_name=self.name, cluster="local",
                              cmd=["python", "eval.py", runs[0].path / "model.pt"],
                              parameters={"report": self.path / "report.json"}, parameter_format="eq",
                              depends_on=runs)
            return runs + [evaluate]


    class Debug(ExperimentDef):
        \"\"\"A second experiment class, switched on by renaming it: not loaded as it is.\"\"\"

        @property
        def name(self) -> str:
            return "debug"

        @property
        def runs(self) -> List[RunDef]:
            return [RunDef(id="d", experiment_name="debug", cluster=CLUSTER, cmd=["true"])]
"""


def test_user_style_files_load_as_in_the_original(tmp_path):
    import hashlib

    def uid(params: dict) -> str:  # written out again here, from the original's definition
        return hashlib.sha512(repr(sorted(params.items())).encode("utf-8")).hexdigest()[:12]

    write(tmp_path, "experiments/__init__.py", "")
    write(tmp_path, "experiments/_common.py", COMMON)
    write(tmp_path, "experiments/sweep_a.py", SWEEP_A)
    write(tmp_path, "experiments/sweep_b.py", SWEEP_B)
    res = evaluate_def_dir(tmp_path, CLUSTERS)
    assert res.errors == [] and res.failed_files == []
    assert res.experiments == {"sweep_a": "experiments/sweep_a.py", "sweep_b": "experiments/sweep_b.py"}
    by_gid = {r.global_id: r for r in res.runs}
    lr = {x: uid({"learning_rate": x, "epochs": 10}) for x in (0.1, 0.01, 0.5)}
    assert sorted(by_gid) == sorted([f"sweep_a@{lr[0.1]}", f"sweep_a@{lr[0.01]}", f"sweep_b@{lr[0.5]}",
                                     "sweep_b@evaluate"])

    # argv per run, with the work dir /w (0.0.15 put the experiment at /w/<experiment>: the
    # directory aside, the same argv)
    def argv(gid: str) -> list[str]:
        spec = by_gid[gid]
        return [ph.resolve(c, WorkDir(Path("/w")), spec.experiment, spec.id) for c in spec.cmd]

    assert argv(f"sweep_a@{lr[0.1]}") == ["python", "train.py", "--learning-rate", "0.1", "--epochs", "10",
                                          "--out-dir", "/w/sweep_a/results"]
    assert argv(f"sweep_a@{lr[0.01]}") == ["python", "train.py", "--learning-rate", "0.01", "--epochs", "10",
                                           "--out-dir", "/w/sweep_a/results"]
    assert argv(f"sweep_b@{lr[0.5]}") == ["python", "train.py", "--learning-rate", "0.5", "--epochs", "10",
                                          "--out-dir", "/w/sweep_b/results"]
    assert argv("sweep_b@evaluate") == ["python", "eval.py", f"/w/sweep_b/{lr[0.5]}/model.pt",
                                        "report=/w/sweep_b/report.json"]
    assert by_gid["sweep_b@evaluate"].depends_on == [f"sweep_b@{lr[0.5]}"]
    ex = by_gid[f"sweep_a@{lr[0.1]}"].executor
    assert ex.venv == "~/venvs/torch" and ex.python_search_path == ["~/src/mylib"] and ex.cuda
    assert ex.prepend_script == ["module load Stages/2024 CUDA"] and ex.env == {"OMP_NUM_THREADS": "4"}
    assert by_gid[f"sweep_a@{lr[0.1]}"].cluster == "gpu" and by_gid["sweep_b@evaluate"].cluster == "local"
