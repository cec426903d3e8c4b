"""JuQueue: packs command-line runs onto as few whole-node SLURM jobs as possible.

Importing the package stays light (no Celery, FastAPI or store): experiment files do
`from juqueue import ExperimentDef, RunDef, ExecutorDef` inside the definition evaluator.
"""

from juqueue.definitions.original_api import ExecutorDef, ExperimentDef, RunDef
from juqueue.version import __version__

__all__ = ["ExecutorDef", "ExperimentDef", "RunDef", "__version__"]
