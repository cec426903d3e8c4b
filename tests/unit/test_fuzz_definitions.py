"""Definition files fuzzed with hypothesis: YAML documents and Python files built from the real
fields with hostile values (wrong types, huge numbers, unicode, deep nesting, `..` and `/` in
names, 10 MB strings), and Python files that loop, sleep, flood their output or kill their
interpreter. Every file ends as a clear error naming it or as a valid load, never a crash or a
hang, and a file that failed leaves the store as it was. Example counts are bounded for CI."""

from __future__ import annotations

import math
import tempfile
import textwrap
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from juqueue.definitions.models import LoadResult
from juqueue.definitions.python_loader import load_python_experiments
from juqueue.definitions.subprocess_eval import load_definitions
from juqueue.definitions.validation import combine, unsafe_name_reason
from juqueue.definitions.yaml_loader import _RUN_FIELDS, load_yaml_file
from juqueue.store.engine import make_engine
from juqueue.store.store import Store

CLUSTERS = {"local", "gpu"}
FAST = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(max_examples=4, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = st.one_of(
    st.sampled_from(["ok", "..", ".", ".hidden", "a/b", "../up", "x@y", "tab\there", " pad ", "", "é€😀", "a\u202eb",
                     "x" * 300, "{i}", "{i:>9999}", "{}", "{", "ok{i}"]),
    st.text(min_size=0, max_size=20),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**20, max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), NAMES,
    st.sampled_from(["00:10:00", "1:2:3:4", "-5", "1e308", "inf", "argparse", "eq", "local", "gpu"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(NAMES, inner, max_size=4)), max_leaves=12)
GOOD = {"cluster": st.sampled_from(sorted(CLUSTERS)), "cmd": st.just(["echo", "hi"]), "id": st.just("r{i}"),
        "matrix": st.just({"i": [1, 2]}), "max_retries": st.integers(0, 3), "slots": st.integers(1, 2)}
FIELDS = list(_RUN_FIELDS) + ["id", "matrix", "runs", "budget_node_hours", "experiment", "no_such_field"]


@st.composite
def yaml_documents(draw) -> object:
    """A mapping of real fields, each a good value or a hostile one; or, now and then, anything."""
    if draw(st.integers(0, 9)) == 0:
        return draw(VALUES)
    doc: dict = {"experiment": draw(st.one_of(st.just("exp"), NAMES))}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=8, unique=True)):
        good = GOOD.get(name)
        doc[name] = draw(good) if good is not None and draw(st.booleans()) else draw(VALUES)
    if draw(st.booleans()):
        doc.setdefault("cluster", "local")
        doc.setdefault("cmd", ["true"])
        doc.setdefault("id", "only")
    if "runs" in doc and draw(st.booleans()):
        doc["runs"] = [{k: draw(VALUES) if draw(st.booleans()) else draw(GOOD.get(k, VALUES)) for k in
                        draw(st.lists(st.sampled_from(FIELDS[:-4]), max_size=4, unique=True))} | {"id": draw(NAMES)}
                       for _ in range(draw(st.integers(0, 3)))]
    return doc


def check_outcome(result: LoadResult, files: list[str]) -> None:
    """Each file failed as a whole with errors naming it, or loaded runs that are safe to run."""
    for err in result.errors:
        assert err.file in files, err
        assert err.message and len(err.message) < 10_000, err.message[:200]
        assert err.run is None or len(err.run) <= 200
    failed = set(result.failed_files)
    assert failed == {e.file for e in result.errors}
    for run in result.runs:
        assert run.source_file not in failed
        assert unsafe_name_reason(run.id) is None and unsafe_name_reason(run.experiment) is None
        assert run.cluster in CLUSTERS and run.slots >= 1 and run.max_retries >= 0
        assert all(isinstance(c, str) for c in run.cmd)
        for key in ("duration", "checkpoint_interval", "restart_cost"):
            value = getattr(run, key, None)
            assert value is None or (math.isfinite(value) and value >= 0), (key, value)


@FAST
@given(doc=yaml_documents())
def test_yaml_documents_load_or_fail_with_a_named_error(doc):
    with tempfile.TemporaryDirectory() as tmp:
        def_dir = Path(tmp)
        path = def_dir / "fuzz.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        result = combine([load_yaml_file(def_dir, path)], CLUSTERS)
        check_outcome(result, ["fuzz.yaml"])


@settings(max_examples=100, deadline=None, database=None)
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_any_text_as_yaml_never_crashes(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(text, errors="surrogateescape")
        check_outcome(combine([load_yaml_file(Path(tmp), path)], CLUSTERS), ["fuzz.yaml"])


HOSTILE_YAML = {
    "deep list": "experiment: e\ncluster: local\nid: x\ncmd: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep map": "experiment: e\ncluster: local\nid: x\nparameters: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "cyclic parameters": "experiment: e\ncluster: local\nid: x\ncmd: [echo]\nparameters: &p {a: *p}\n",
    "cyclic executor": "experiment: e\ncluster: local\nid: x\ncmd: [echo]\nexecutor: &p {env: *p}\n",
    "10 MB id": "experiment: e\ncluster: local\nid: '" + "x" * 10_000_000 + "'\ncmd: [echo]\n",
    "10 MB experiment": "experiment: '" + "é" * 5_000_000 + "'\ncluster: local\nid: x\ncmd: [echo]\n",
    "huge matrix": "experiment: m\ncluster: local\nid: '{a}{b}{c}{d}{e}{f}'\ncmd: [echo]\nmatrix: {"
                   + ", ".join(f"{k}: [0,1,2,3,4,5,6,7,8,9]" for k in "abcdef") + "}\n",
    "wide id template": "experiment: e\ncluster: local\nid: '{a:>99999999}'\ncmd: [echo]\nmatrix: {a: [1, 2]}\n",
    "bad brace": "experiment: e\ncluster: local\nid: '{a'\ncmd: [echo]\nmatrix: {a: [1, 2]}\n",
    "dot dot": "experiment: ..\ncluster: local\nid: ../x\ncmd: [echo]\n",
}


def test_hostile_yaml_files_each_fail_named_and_quickly():
    """Regressions: deep nesting raised RecursionError out of the loader; a 10 MB id took half a
    minute to parse and came back in every message; `{a:>99999999}` built 100 MB ids; a matrix
    of a million runs was expanded before anything was checked."""
    with tempfile.TemporaryDirectory() as tmp:
        def_dir = Path(tmp)
        files = []
        for i, text in enumerate(HOSTILE_YAML.values()):
            (def_dir / f"h{i}.yaml").write_text(text)
            files.append(load_yaml_file(def_dir, def_dir / f"h{i}.yaml"))
        result = combine(files, CLUSTERS)
    check_outcome(result, [f.file for f in files])
    assert sorted(result.failed_files) == sorted(f.file for f in files), [(e.file, e.message[:80]) for e in result.errors]


PY_TEMPLATE = '''
from juqueue.definitions.original_api import ExperimentDef, RunDef


class Experiment(ExperimentDef):
    name = {name!r}
    {extra}

    @property
    def runs(self):
        return [RunDef(**kw) for kw in {runs!r}]
'''
RUN_KWARGS = ["id", "experiment_name", "cluster", "cmd", "parameters", "depends_on", "max_retries", "slots", "duration",
              "movable", "hold", "checkpoint_interval", "restart_cost", "executor", "nonsense"]


@st.composite
def python_files(draw) -> str:
    name = draw(st.one_of(st.just("pyexp"), NAMES))
    runs = []
    for _ in range(draw(st.integers(0, 3))):
        kw = {"id": draw(NAMES), "experiment_name": name, "cluster": "local", "cmd": ["true"]}
        for key in draw(st.lists(st.sampled_from(RUN_KWARGS), max_size=4, unique=True)):
            kw[key] = draw(VALUES)
        runs.append(kw)
    extra = draw(st.sampled_from(["", "budget_node_hours = -1", "budget_node_hours = 1e309", "hold = 'yes'",
                                  "checkpoint_interval = 'soon'", "runs = 5"]))
    return PY_TEMPLATE.format(name=name, runs=runs, extra=extra)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=python_files())
def test_python_files_of_real_fields_load_or_fail_named(source):
    with tempfile.TemporaryDirectory() as tmp:
        def_dir = Path(tmp)
        (def_dir / "experiments").mkdir()
        (def_dir / "experiments" / "fuzz.py").write_text(source)
        result = combine(load_python_experiments(def_dir), CLUSTERS)
    check_outcome(result, ["experiments/fuzz.py"])


GOOD_PY = PY_TEMPLATE.format(name="pygood", extra="", runs=[{"id": "one", "experiment_name": "pygood", "cluster": "local",
                                                              "cmd": ["true"]}])
BEHAVIOURS = {
    "loops": "while True:\n    pass\n",
    "sleeps": "import time\ntime.sleep(3600)\n",
    "floods": "import sys\nwhile True:\n    print('x' * 10000)\n",
    "floods_stderr": "import sys\nwhile True:\n    sys.stderr.write('y' * 10000)\n",
    "exits_hard": "import os\nos._exit(3)\n",
    "interrupts": "raise KeyboardInterrupt\n",
    "recurses": "def f():\n    return f()\nf()\n",
    "sys_exit": "import sys\nsys.exit(5)\n",
}


@SLOW
@given(chosen=st.lists(st.sampled_from(sorted(BEHAVIOURS)), min_size=1, max_size=3, unique=True), good_first=st.booleans())
def test_misbehaving_python_files_fail_alone_and_named(chosen, good_first):
    with tempfile.TemporaryDirectory() as tmp:
        def_dir = Path(tmp)
        (def_dir / "experiments").mkdir()
        (def_dir / "experiments" / ("a_good.py" if good_first else "z_good.py")).write_text(GOOD_PY)
        (def_dir / "plain.yaml").write_text("experiment: plain\ncluster: local\nid: p\ncmd: [true]\n")
        for name in chosen:
            (def_dir / "experiments" / f"m_{name}.py").write_text(BEHAVIOURS[name])
        result = load_definitions(def_dir, CLUSTERS, timeout_s=2.5)
    assert not result.aborted, result.errors
    assert sorted(result.failed_files) == sorted(f"experiments/m_{n}.py" for n in chosen), result.errors
    assert sorted(r.global_id for r in result.runs) == ["plain@p", "pygood@one"]


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(doc=yaml_documents())
def test_a_failed_file_never_changes_the_store(tmp_path, doc):
    """The file loaded once; then its fuzzed edit. If the edit fails, the store is exactly as before."""
    def_dir = tmp_path / "defs"
    def_dir.mkdir(exist_ok=True)
    path = def_dir / "exp.yaml"
    path.write_text(textwrap.dedent("""
        experiment: exp
        cluster: local
        cmd: [echo]
        id: "r{i}"
        matrix: {i: [1, 2, 3]}
    """))
    store = Store(make_engine(None, tmp_path / f"w{id(doc)}"))
    store.apply_definitions(combine([load_yaml_file(def_dir, path)], CLUSTERS), now=1.0)
    before = _snapshot(store)
    if isinstance(doc, dict):
        doc["experiment"] = "exp"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    result = combine([load_yaml_file(def_dir, path)], CLUSTERS)
    store.apply_definitions(result, now=2.0)
    if result.failed_files:
        assert _snapshot(store) == before


def _snapshot(store: Store) -> list[tuple]:
    runs = store.list_runs()
    return sorted((r.global_id, r.status, r.spec_json, r.fingerprint, r.defined, r.queued_at) for r in runs) + \
        sorted((e.name, e.defined, e.source_file) for e in store.experiments())
