"""cleanfit's exception types.

User mistakes raise a subclass of :class:`CleanfitError` whose message says what is wrong, where
(the file, field, column or argument) and how to fix it. The command line turns them into one line
on stderr and exit code 2. Bugs in cleanfit itself still raise ordinary Python exceptions.
"""

from __future__ import annotations


class CleanfitError(Exception):
    """Base class of every error caused by user input."""


class DataError(CleanfitError, ValueError):
    """Bad data, columns, arrays, batches or splits."""


class ConfigError(CleanfitError, ValueError):
    """A configuration file or argument that cannot be used as given."""


class CheckpointError(CleanfitError):
    """A checkpoint that cannot be written, read, verified or resumed from."""


class TrainingError(CleanfitError, RuntimeError):
    """Training cannot go on (a non-finite loss, a model that does not fit the batch, ...)."""


class LeakWarning(UserWarning):
    """A setting that lets information cross the split (e.g. groups given but not used by the split)."""


__all__ = ["CleanfitError", "DataError", "ConfigError", "CheckpointError", "TrainingError", "LeakWarning"]
