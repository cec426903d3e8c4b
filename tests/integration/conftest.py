import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import kill_leftovers

# Seconds the slowest tests took under `pytest -n 4` on the 2-core test machine (--durations,
# 2026-12-07). Refresh from a run's --durations when they change a lot; unlisted tests count as fast.
EXPECTED_S = {
    "test_slurm_engine.py::test_wall_time_warning_checkpoints_and_resumes_on_a_new_node": 223,
    "test_consolidation_slurm.py::test_three_jobs_each_with_one_long_run_consolidate_to_one": 112,
    "test_usage_slurm.py::test_slurm_job_bills_from_its_slurm_start_and_its_end_is_estimated": 65,
    "test_simulate_vs_controller.py::test_simulation_of_a_real_run_matches_it": 62,
    "test_cluster_reload.py::test_lower_max_jobs_and_aggressive_at_run_time_consolidates_to_one": 57,
    "test_consolidation_local.py::test_four_nodes_each_with_one_long_run_consolidate_to_one": 53,
    "test_store_outage.py::test_postgresql_connections_killed_and_refused_while_runs_flow": 47,
    "test_slurm_engine.py::test_scancel_mid_run_requeues_and_resumes_on_another_node": 47,
    "test_engine_local.py::test_run_that_exits_0_on_sigterm_is_requeued_when_its_node_stops": 45,
    "test_cluster_reload.py::test_idle_set_at_run_time_stops_further_moves_and_bad_files_change_nothing": 45,
    "test_usage_local.py::test_usage_by_hand_and_across_a_restart": 45,
    "test_slurm_engine.py::test_sbatch_rejection_shows_slurms_message_and_does_not_loop": 43,
    "test_store_outage.py::test_sqlite_commits_refused_while_runs_flow": 42,
    "test_held_runs.py::test_hold_new_release_hold_and_resume_completed": 42,
    "test_work_dir_layout.py::test_previous_layout_is_migrated_and_served_nothing_reruns": 41,
    "test_slurm_engine.py::test_controller_restart_reattaches_running_jobs": 38,
}


def _balances_one_test_at_a_time(config: pytest.Config) -> bool:
    """xdist hands out tests one by one (or steals them back): then the slowest should start first.
    With its default chunks of consecutive tests that order would give one worker all slow tests."""
    dist = getattr(config.option, "dist", "no")
    return dist in ("worksteal", "loadgroup", "loadscope") or (dist == "load" and getattr(config.option, "maxschedchunk", None) == 1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slowest tests first when xdist balances test by test: the longest then never start last."""
    if _balances_one_test_at_a_time(config):
        items.sort(key=lambda item: -EXPECTED_S.get(item.nodeid.rpartition("/")[2], 0))


@pytest.fixture
def workspace(tmp_path):
    """A def dir and a work dir; every process of the work dir is killed afterwards."""
    (tmp_path / "defs").mkdir()
    yield tmp_path
    kill_leftovers(tmp_path)
