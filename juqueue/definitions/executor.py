"""`juqueue.definitions.executor`, the original's module path of `ExecutorDef`."""

from juqueue.definitions.original_api import ExecutorDef

__all__ = ["ExecutorDef"]
