"""Typed user-facing errors.

Everything a user can get wrong (a config key, a CSV column, a label, a budget) raises a subclass of
``FedkdError`` whose message names the bad value and what is allowed. The CLI prints such errors as one
line and exits non-zero; anything else is a bug and keeps its traceback.
"""


class FedkdError(Exception):
    """Base class of errors caused by user input rather than by a bug."""


class ConfigError(FedkdError, ValueError):
    """An experiment config has an unknown key, a wrong type or a value out of range."""


class DataError(FedkdError, ValueError):
    """A dataset, crowd file or label array is missing, malformed or out of range."""
