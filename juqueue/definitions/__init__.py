"""Definitions: the original Python API, the YAML and Python loaders, clusters.yaml (pure).

The original's module paths import with the same names: `juqueue.definitions.run`,
`.executor`, `.experiment`, `.path` and `.utils` (`DefUtils`).
"""

from juqueue.definitions.original_api import ExecutorDef, ExperimentDef, PathDef, PathVars, RunDef

__all__ = ["ExecutorDef", "ExperimentDef", "PathDef", "PathVars", "RunDef"]
