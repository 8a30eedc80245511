"""Errors advjax raises for bad input; the CLI prints them on one line and exits non-zero."""


class AdvjaxError(Exception):
    """Base class of the errors a user can cause (bad files, bad flags)."""


class DataError(AdvjaxError):
    """A split file is missing or malformed. The message names the file and line."""
