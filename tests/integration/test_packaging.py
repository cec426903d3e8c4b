"""A plain `pip install .` into a fresh venv, used from `/`: no source tree to lean on."""

from __future__ import annotations

import subprocess
import venv

from helpers import REPO


def test_pip_install_ships_workers_inside_juqueue(tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", str(REPO)], capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    check = subprocess.run(
        [str(py), "-c", (
            "import importlib.util, juqueue.workers, juqueue.workers.node, juqueue;"
            "assert importlib.util.find_spec('workers') is None, 'top-level workers package installed';"
            "import pathlib; t = pathlib.Path(juqueue.workers.__file__).parent / 'templates';"
            "print(juqueue.__version__, juqueue.workers.__file__)"
        )],
        capture_output=True, text=True, cwd="/", timeout=120,
    )
    assert check.returncode == 0, check.stderr
    assert "site-packages" in check.stdout and check.stdout.startswith("1.0.0.dev0")
    help_out = subprocess.run([str(env_dir / "bin" / "juqueue"), "--help"], capture_output=True, text=True, cwd="/", timeout=120)
    assert help_out.returncode == 0, help_out.stderr
    assert "serve" in help_out.stdout
