"""The original Python API: rendering, placeholders, fork/abstract, RunSpec conversion."""

from pathlib import Path, PurePosixPath

import pytest
from pydantic import ValidationError

import juqueue
from juqueue import ExecutorDef, ExperimentDef, RunDef


def run(**kw):
    base = dict(id="r", experiment_name="e", cluster="local", cmd=["prog"])
    base.update(kw)
    return RunDef(**base)


def test_package_exports_and_version():
    assert juqueue.RunDef is RunDef and juqueue.ExperimentDef is ExperimentDef
    assert juqueue.ExecutorDef is ExecutorDef
    assert juqueue.__version__ == "1.0.0.dev0"


def test_argparse_renders_dashes():
    spec = run(parameters={"learning_rate": 0.1, "epochs": 3}).to_spec()
    assert spec.cmd == ["prog", "--learning-rate", "0.1", "--epochs", "3"]


def test_eq_keeps_key():
    spec = run(parameters={"learning_rate": 0.1}, parameter_format="eq").to_spec()
    assert spec.cmd == ["prog", "learning_rate=0.1"]


def test_cmd_items_int_float_path():
    spec = run(cmd=["sleep", 5, 0.5, Path("/tmp/x"), PurePosixPath("rel")]).to_spec()
    assert spec.cmd == ["sleep", "5", "0.5", "/tmp/x", "rel"]


def test_bool_and_list_render_like_the_original():
    spec = run(parameters={"flag": True, "ids": [1, 2]}).to_spec()
    assert spec.cmd == ["prog", "--flag", "True", "--ids", "[1, 2]"]


def test_none_parameter_rejected_with_name():
    with pytest.raises(ValidationError, match="parameter 'x' is None"):
        run(parameters={"x": None})


def test_bad_cmd_item_names_index():
    with pytest.raises(ValidationError, match=r"cmd\[1\]"):
        run(cmd=["a", None])


def test_placeholders():
    r = run(cmd=["cp", "in", run().path / "out.txt"], parameters={"logs": run().log_path})
    assert r.to_spec().cmd == ["cp", "in", "{run_dir}/out.txt", "--logs", "{log_dir}"]
    # the path names its run, so another run's command reaches this run's directory
    assert str(r.path) == "{run_dir:e@r}" and str(r.log_path) == "{log_dir:e@r}"


def test_abstract_and_fork():
    tpl = RunDef.create_abstract(experiment_name="e", cluster="local", cmd=["x"], parameters={"a": 1})
    assert tpl.is_abstract and tpl.global_id == "@abstract_run"
    with pytest.raises(ValueError):
        tpl.to_spec()
    with pytest.raises(ValueError):
        RunDef.create_abstract(id="nope", experiment_name="e", cluster="local", cmd=["x"])
    child = tpl.fork("c1")
    child.parameters["b"] = 2
    assert not child.is_abstract and child.global_id == "e@c1"
    assert tpl.parameters == {"a": 1}  # deep copy
    assert child.to_spec().cmd == ["x", "--a", "1", "--b", "2"]


def test_depends_on_by_object_and_id():
    other = run(id="o", experiment_name="other")
    spec = run(depends_on=[other, "same", "x@y"]).to_spec()
    assert spec.depends_on == ["other@o", "e@same", "x@y"]


def test_executor_to_spec_coerces():
    ex = ExecutorDef(env={"N": 3}, python_search_path=[Path("/lib")], venv=Path("/venv"),
                     prepend_script=["module load x"], cuda=True)
    spec = run(executor=ex, max_retries=2).to_spec(source_file="f.py")
    assert spec.executor.env == {"N": "3"} and spec.executor.python_search_path == ["/lib"]
    assert spec.executor.venv == "/venv" and spec.executor.prepend_script == ["module load x"]
    assert spec.executor.cuda and spec.max_retries == 2 and spec.source_file == "f.py"
    assert run().to_spec().executor.prepend_script == []


def test_experiment_def_is_abstract():
    with pytest.raises(TypeError):
        ExperimentDef()
