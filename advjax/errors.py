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


def check_finite(values: dict[str, float], where: str) -> None:
    """Raises NonFiniteError naming the first NaN or infinite value and `where` it arose
    ("in epoch 12"): nothing computed from it is worth keeping."""
    for name, value in values.items():
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise NonFiniteError(f"non-finite {name} ({value}) {where}; stopping")
