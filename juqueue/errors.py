"""Project errors that carry enough to name the culprit."""

from __future__ import annotations


class JuQueueError(Exception):
    """Base of every error JuQueue raises on purpose."""


class ConfigError(JuQueueError):
    """A configuration or definition is wrong; the message names the file and field."""


class AlreadyRunningError(JuQueueError):
    """Another controller holds the work dir's lock."""


class StoreSchemaError(JuQueueError):
    """The store's schema cannot be used or upgraded by this code; the message says what to do."""


class WorkDirMigrationError(ConfigError):
    """The work dir cannot be migrated now; the message says why and what to do. Nothing was moved
    unless the message says so."""
