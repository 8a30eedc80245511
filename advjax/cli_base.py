"""What every advjax command line shares, without importing JAX: absl flag parsing
with one-line errors, and the guard that turns a user's error into one.

A user sees an error as one line ``error: ...`` on stderr: exit 2 for a flag error (an
unknown flag, also in a flagfile; a value of the wrong type; a stray argument), exit 1
for bad input (an ``AdvjaxError``) or a file that cannot be read or written
(``OSError``). Each CLI family passes its own `fail` (experiments/cli.py ends the
process with ``os._exit`` so Orbax's exit hooks cannot print over the error;
data_prep/cli.py with ``sys.exit``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from absl import app, flags

from advjax.errors import AdvjaxError

Fail = Callable[..., NoReturn]


def parse_flags(argv: list[str], fail: Fail) -> list[str]:
    """absl's parser; a bad flag, flagfile or stray argument goes to ``fail(msg, status=2)``."""
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as err:
        fail(err, status=2)
    if len(rest) > 1:
        fail(f"unexpected arguments: {' '.join(rest[1:])}", status=2)
    return rest


def run_guarded(
    main: Callable[[list[str]], None], fail: Fail, setup: Callable[[], None] = lambda: None
) -> None:
    """``app.run(main)`` with flags parsed by `parse_flags`, `setup()` called once flags
    are parsed, and an AdvjaxError or OSError from `main` ending the process via `fail`."""

    def guarded(argv: list[str]) -> None:
        setup()
        try:
            main(argv)
        except (AdvjaxError, OSError) as err:
            fail(err)

    app.run(guarded, flags_parser=lambda argv: parse_flags(argv, fail))
