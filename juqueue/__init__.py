"""JuQueue: packs command-line runs onto as few whole-node SLURM jobs as possible.

Importing the package stays light (no Celery, FastAPI, store or pydantic): experiment files do
`from juqueue import ExperimentDef, RunDef, ExecutorDef, DefUtils` inside the definition
evaluator, and those names are imported on first use, so a CLI command does not pay for them.
"""

from juqueue.version import __version__

__all__ = ["DefUtils", "ExecutorDef", "ExperimentDef", "RunDef", "__version__"]


def __getattr__(name: str) -> object:
    if name == "DefUtils":
        import juqueue.definitions.utils as def_utils

        return def_utils
    if name in ("ExecutorDef", "ExperimentDef", "RunDef"):
        from juqueue.definitions import original_api

        return getattr(original_api, name)
    raise AttributeError(f"module 'juqueue' has no attribute {name!r}")
