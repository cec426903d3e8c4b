"""Helpers the integration tests and the benchmarks share: starting `juqueue serve`, waiting,
processes, ports and SLURM's queue.

Tests import them as `support.<module>` (pytest puts tests/ on sys.path, as tests/ has no
__init__.py); bench/ scripts put tests/ on sys.path themselves. Nothing here imports pytest.
"""
