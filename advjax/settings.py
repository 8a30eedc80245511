"""Settings: what a registered part (a loss, an augmentation, a backbone) declares as its
own flags, and the checks they share. A low module: the registries and TrainConfig read
it, and it imports nothing of advjax.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Setting:
    """One flag of a loss: a TrainConfig field named `name`.

    Attributes:
      name: flag and field name; prefixed with the loss's name by convention
        (``ccl_margin``), unless several losses share it.
      default: value when the flag is not given; its type is the flag's type. It must
        keep the behaviour from before the setting existed (saved configurations
        without it read as this default).
      help: the flag's help text.
      check: value -> None when valid, else a phrase saying what is wrong
        (``"must be > 0"``); TrainConfig raises it as a ConfigError.
    """

    name: str
    default: Any
    help: str
    check: Callable[[Any], str | None] = lambda value: None


def merged_settings(specs, kind: str) -> tuple[Setting, ...]:
    """Every spec's settings, each name once: specs that share a setting (CCL's and the
    augmentations' own) must declare it with one default. `kind` names them in the
    error ("losses")."""
    settings: dict[str, Setting] = {}
    for spec in specs:
        for setting in spec.settings:
            known = settings.setdefault(setting.name, setting)
            if known.default != setting.default:
                raise ValueError(
                    f"{kind} declare setting {setting.name!r} with different defaults "
                    f"({known.default!r}, {setting.default!r})"
                )
    return tuple(settings.values())


def nothing_wrong(cfg) -> str | None:
    """A spec's default whole-configuration `check` (a backbone's, a fitted model's, a
    loss's): every configuration suits it."""
    return None


def positive(value) -> str | None:
    """Setting.check: the value must be > 0."""
    return None if value > 0 else "must be > 0"


def non_negative(value) -> str | None:
    """Setting.check: the value must be >= 0."""
    return None if value >= 0 else "must be >= 0"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    """Setting.check: the value must be one of `choices`."""

    def check(value) -> str | None:
        return None if value in choices else f"must be one of {choices}"

    return check
