"""`juqueue.definitions.path`, the original's module path of `PathDef` and `PathVars`."""

from juqueue.definitions.original_api import PathDef, PathVars

__all__ = ["PathDef", "PathVars"]
