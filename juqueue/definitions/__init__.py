"""Definitions: the original Python API, the YAML and Python loaders, clusters.yaml (pure)."""

from juqueue.definitions.original_api import ExecutorDef, ExperimentDef, PathDef, PathVars, RunDef

__all__ = ["ExecutorDef", "ExperimentDef", "PathDef", "PathVars", "RunDef"]
