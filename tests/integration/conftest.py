import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import kill_leftovers

@pytest.fixture
def workspace(tmp_path):
    """A def dir and a work dir; every process of the work dir is killed afterwards."""
    (tmp_path / "defs").mkdir()
    yield tmp_path
    kill_leftovers(tmp_path)
