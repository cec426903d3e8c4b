"""`juqueue.definitions.run`, the original's module path of `RunDef`."""

from juqueue.definitions.original_api import ExecutorDef, PathDef, PathVars, RunDef

__all__ = ["ExecutorDef", "PathDef", "PathVars", "RunDef"]
