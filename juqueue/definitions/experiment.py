"""`juqueue.definitions.experiment`, the original's module path of `ExperimentDef`."""

from juqueue.definitions.original_api import ExperimentDef, RunDef

__all__ = ["ExperimentDef", "RunDef"]
