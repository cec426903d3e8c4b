"""YAML and Python loaders and the cross-file validation, in-process (evaluate_def_dir)."""

import textwrap
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from juqueue.definitions.evaluate import evaluate_def_dir
from juqueue.definitions.yaml_loader import expand_matrix

EXAMPLES = Path(__file__).resolve().parents[2] / "example_defs"
CLUSTERS = {"local"}


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def py_exp(name: str, runs: str, extra: str = "") -> str:
    return (
        "from juqueue import ExperimentDef, RunDef, ExecutorDef\n" + extra + "\n"
        "class Experiment(ExperimentDef):\n"
        f"    name = {name!r}\n"
        "    @property\n"
        "    def runs(self):\n"
        f"        return {runs}\n"
    )


def R(rid: str, exp: str = "e", cluster: str = "local", deps: list | None = None) -> str:
    extra = f", depends_on={deps!r}" if deps is not None else ""
    return f"RunDef(id={rid!r}, experiment_name={exp!r}, cluster={cluster!r}, cmd=['true']{extra})"


GOOD_YAML = "experiment: good\ncluster: local\ncmd: [echo, hi]\nid: only\n"


def test_example_defs_load():
    res = evaluate_def_dir(EXAMPLES, CLUSTERS)
    assert res.errors == [] and not res.aborted
    assert res.experiments == {"helloworld": "experiments/helloworld.py", "sweep": "sweep.yaml"}
    ids = {r.global_id for r in res.runs}
    assert len([i for i in ids if i.startswith("sweep@")]) == 6
    assert "helloworld@sleep_3" in ids and "helloworld@read_file" in ids


def test_original_helloworld_unchanged(tmp_path):
    # the original repository's example, verbatim apart from the sleep lengths
    write(tmp_path, "experiments/helloworld.py", '''
        from dataclasses import dataclass
        from typing import List

        from juqueue import ExperimentDef, RunDef, ExecutorDef


        @dataclass
        class Experiment(ExperimentDef):
            @property
            def name(self) -> str:
                return "helloworld"

            @property
            def runs(self) -> List[RunDef]:
                runs = [
                    RunDef(id="helloworld", experiment_name=self.name, cmd=["echo", "Hello world!"], cluster="example_local"),
                    RunDef(id="python", experiment_name=self.name,
                           cmd=["python", "-V"],
                           cluster="example_local",
                           executor=ExecutorDef(
                               prepend_script=["module load Python/3.9.6"]
                           )),
                ]

                for delay in (1, 2, 3):
                    runs.append(
                        RunDef(id=f"sleep_{delay}", experiment_name=self.name, cmd=["sleep", delay], cluster="example_local")
                    )

                return runs
    ''')
    res = evaluate_def_dir(tmp_path, {"example_local", "example_local2"})
    assert res.errors == []
    by_id = {r.id: r for r in res.runs}
    assert by_id["sleep_2"].cmd == ["sleep", "2"]
    assert by_id["python"].executor.prepend_script == ["module load Python/3.9.6"]
    assert res.experiments == {"helloworld": "experiments/helloworld.py"}


def test_helper_module_and_relative_import(tmp_path):
    write(tmp_path, "common.py", "CMD = ['echo', 'from helper']\n")
    write(tmp_path, "experiments/_shared.py", "CLUSTER = 'local'\n")
    write(tmp_path, "experiments/a.py", py_exp("e", "[RunDef(id='x', experiment_name='e', cluster=CLUSTER, cmd=CMD)]",
                                                "from common import CMD\nfrom ._shared import CLUSTER\n"))
    res = evaluate_def_dir(tmp_path, CLUSTERS)
    assert res.errors == [] and res.runs[0].cmd == ["echo", "from helper"]


def test_yaml_matrix_and_runs(tmp_path):
    write(tmp_path, "sub/exp.yml", """
        experiment: sw
        cluster: local
        cmd: python3 train.py --fixed "a b"
        parameters: {epochs: 2}
        executor: {env: {A: "1"}}
        max_retries: 1
        runs:
          - id: "lr{lr}_seed{seed}"
            matrix: {lr: [0.1, 0.01], seed: [1, 2, 3]}
          - id: eval
            parameter_format: eq
            parameters: {epochs: 0}
            executor: {cuda: true}
            depends_on: [lr0.1_seed1]
    """)
    res = evaluate_def_dir(tmp_path, CLUSTERS)
    assert res.errors == []
    by_id = {r.id: r for r in res.runs}
    assert len(by_id) == 7
    assert by_id["lr0.01_seed3"].cmd == ["python3", "train.py", "--fixed", "a b", "--epochs", "2",
                                         "--lr", "0.01", "--seed", "3"]
    assert by_id["eval"].cmd[-1] == "epochs=0" and by_id["eval"].executor.cuda
    assert by_id["eval"].executor.env == {"A": "1"} and by_id["eval"].max_retries == 1
    assert by_id["eval"].depends_on == ["sw@lr0.1_seed1"]
    assert res.experiments == {"sw": "sub/exp.yml"}


def assert_one_error(res, file, *needles, field=None, run=None):
    errs = [e for e in res.errors if e.file == file]
    assert errs, res.errors
    text = " | ".join(str(e) for e in errs)
    for n in needles:
        assert n in text, text
    if field:
        assert any(e.field == field for e in errs), text
    if run:
        assert any(e.run and run in e.run for e in errs), text
    assert file in res.failed_files
    assert not any(r.source_file == file for r in res.runs)


def bad_dir(tmp_path, rel, text):
    write(tmp_path, "good.yaml", GOOD_YAML)
    write(tmp_path, rel, text)
    res = evaluate_def_dir(tmp_path, CLUSTERS)
    assert [r.global_id for r in res.runs if r.source_file == "good.yaml"] == ["good@only"]
    assert "good.yaml" not in res.failed_files
    return res


def test_yaml_syntax_error(tmp_path):
    res = bad_dir(tmp_path, "broken.yaml", "experiment: x\ncmd: [a, b\n")
    assert_one_error(res, "broken.yaml", "YAML syntax error", "line")


def test_python_exception_names_line(tmp_path):
    res = bad_dir(tmp_path, "experiments/boom.py", "x = 1\nraise RuntimeError('kaputt')\n")
    assert_one_error(res, "experiments/boom.py", "RuntimeError: kaputt", "line 2")


def test_exception_inside_runs_keeps_experiment_name(tmp_path):
    res = bad_dir(tmp_path, "experiments/boom.py", py_exp("boomexp", "1 / 0"))
    assert_one_error(res, "experiments/boom.py", "ZeroDivisionError", "Experiment.runs")
    assert res.failed_experiments == ["boomexp"]


def test_sys_exit_in_file(tmp_path):
    res = bad_dir(tmp_path, "experiments/quit.py", "import sys\nsys.exit(3)\n")
    assert_one_error(res, "experiments/quit.py", "sys.exit(3)", "line 2")


def test_unknown_cluster(tmp_path):
    res = bad_dir(tmp_path, "experiments/c.py", py_exp("e", f"[{R('a', cluster='nope')}]"))
    assert_one_error(res, "experiments/c.py", "unknown cluster 'nope'", field="cluster", run="a")


def test_duplicate_run_ids(tmp_path):
    res = bad_dir(tmp_path, "experiments/d.py", py_exp("e", f"[{R('a')}, {R('a')}]"))
    assert_one_error(res, "experiments/d.py", "'a' is used by 2 runs", run="a")


def test_duplicate_ids_from_matrix_template(tmp_path):
    res = bad_dir(tmp_path, "m.yaml", "experiment: m\ncluster: local\ncmd: [x]\nid: run\nmatrix: {a: [1, 2]}\n")
    assert_one_error(res, "m.yaml", "does not use matrix key", field="id")


def test_unsafe_names(tmp_path):
    for i, bad in enumerate(["", "..", ".", "a/b", "tab\there", "nul\x00x"]):
        d = tmp_path / str(i)
        res = bad_dir(d, "experiments/u.py", py_exp("e", f"[{R(bad)}]"))
        assert_one_error(res, "experiments/u.py", "run id", field="id")
    res = bad_dir(tmp_path / "x", "bad.yaml", "experiment: ../up\ncluster: local\ncmd: [x]\nid: r\n")
    assert_one_error(res, "bad.yaml", "experiment name", field="experiment")


def test_same_experiment_in_two_files(tmp_path):
    write(tmp_path, "one.yaml", "experiment: twin\ncluster: local\ncmd: [x]\nid: a\n")
    res = bad_dir(tmp_path, "experiments/two.py", py_exp("twin", f"[{R('b', exp='twin')}]"))
    assert_one_error(res, "one.yaml", "also defined in experiments/two.py")
    assert_one_error(res, "experiments/two.py", "also defined in one.yaml")
    assert res.failed_experiments == ["twin"]


def test_missing_fields(tmp_path):
    res = bad_dir(tmp_path, "experiments/f.py", py_exp("e", "[RunDef(id='a', experiment_name='e', cmd=['x'])]"))
    assert_one_error(res, "experiments/f.py", "missing required field", field="cluster")
    res = bad_dir(tmp_path / "y", "f.yaml", "experiment: e\ncmd: [x]\nid: a\n")
    assert_one_error(res, "f.yaml", "missing", field="cluster", run="a")
    res = bad_dir(tmp_path / "z", "g.yaml", "cluster: local\ncmd: [x]\nid: a\n")
    assert_one_error(res, "g.yaml", "missing", field="experiment")
    res = bad_dir(tmp_path / "w", "h.yaml", "experiment: e\ncluster: local\ncmd: [x]\nid: a\nretries: 3\n")
    assert_one_error(res, "h.yaml", "unknown field", field="retries")


def test_unknown_dependency(tmp_path):
    res = bad_dir(tmp_path, "experiments/dep.py", py_exp("e", f"[{R('a', deps=['ghost'])}]"))
    assert_one_error(res, "experiments/dep.py", "unknown run 'e@ghost'", field="depends_on", run="a")


def test_dependency_on_failed_file_is_not_unknown(tmp_path):
    write(tmp_path, "experiments/broken.py", py_exp("other", "1 / 0"))
    write(tmp_path, "dep.yaml", "experiment: e\ncluster: local\ncmd: [x]\nid: a\ndepends_on: [other@b]\n")
    res = evaluate_def_dir(tmp_path, CLUSTERS)
    assert res.failed_files == ["experiments/broken.py"]
    assert [r.global_id for r in res.runs] == ["e@a"]


def test_cycle_names_runs(tmp_path):
    runs = f"[{R('a', deps=['b'])}, {R('b', deps=['c'])}, " \
           f"{R('c', deps=['a'])}, {R('free')}]"
    res = bad_dir(tmp_path, "experiments/cyc.py", py_exp("e", runs))
    assert_one_error(res, "experiments/cyc.py", "dependency cycle", "e@a", "e@b", "e@c", field="depends_on")
    res = bad_dir(tmp_path / "s", "self.yaml", "experiment: s\ncluster: local\ncmd: [x]\nid: a\ndepends_on: [a]\n")
    assert_one_error(res, "self.yaml", "dependency cycle: s@a -> s@a")


def test_wrong_experiment_name_in_run(tmp_path):
    res = bad_dir(tmp_path, "experiments/w.py", py_exp("e", f"[{R('a', exp='other')}]"))
    assert_one_error(res, "experiments/w.py", "differs", field="experiment_name")


def test_abstract_runs_are_skipped(tmp_path):
    write(tmp_path, "experiments/t.py", py_exp(
        "e", "[tpl, tpl.fork('a')]",
        "tpl = RunDef.create_abstract(experiment_name='e', cluster='local', cmd=['x'])\n"))
    res = evaluate_def_dir(tmp_path, CLUSTERS)
    assert res.errors == [] and [r.id for r in res.runs] == ["a"]


def test_no_cluster_check_when_none(tmp_path):
    write(tmp_path, "a.yaml", "experiment: e\ncluster: anything\ncmd: [x]\nid: a\n")
    assert evaluate_def_dir(tmp_path, None).errors == []


def test_missing_def_dir_aborts(tmp_path):
    res = evaluate_def_dir(tmp_path / "nope", CLUSTERS)
    assert res.aborted and "does not exist" in res.errors[0].message


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z]{1,4}", fullmatch=True),
                       st.lists(st.integers(-50, 50), min_size=1, max_size=4, unique=True),
                       min_size=1, max_size=3))
def test_matrix_size_is_product_and_ids_unique(matrix):
    combos = expand_matrix(matrix)
    expected = 1
    for values in matrix.values():
        expected *= len(values)
    assert len(combos) == expected
    template = "_".join(f"{k}{{{k}}}" for k in matrix)
    ids = [template.format(**c) for c in combos]
    assert len(set(ids)) == len(ids)
