"""The one place the version lives: workers compare theirs to the controller's."""

__version__ = "1.0.0.dev0"
