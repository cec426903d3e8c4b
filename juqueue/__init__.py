"""JuQueue: packs command-line runs onto as few whole-node SLURM jobs as possible.

Importing the package stays light (no Celery, FastAPI or store): experiment files do
`from juqueue import ExperimentDef, RunDef, ExecutorDef, DefUtils` inside the definition evaluator.
"""

import juqueue.definitions.utils as DefUtils  # noqa: N812 (the original's name)
from juqueue.definitions.original_api import ExecutorDef, ExperimentDef, RunDef
from juqueue.version import __version__

__all__ = ["DefUtils", "ExecutorDef", "ExperimentDef", "RunDef", "__version__"]
