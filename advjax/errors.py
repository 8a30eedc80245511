"""Errors advjax raises for bad input; the CLI prints them on one line and exits non-zero."""


class AdvjaxError(Exception):
    """Base class of the errors a user can cause (bad files, bad flags)."""


class DataError(AdvjaxError):
    """A split file is missing or malformed. The message names the file and line."""


class NonFiniteError(AdvjaxError):
    """A loss or metric became NaN or infinite; the message names the epoch."""


class ConfigError(AdvjaxError, ValueError):
    """A setting is out of range or unknown."""


class WorkdirError(AdvjaxError):
    """The workdir cannot be created or written."""
