"""What the data_prep CLIs share: flag parsing, one-line errors, the command line.

As in experiments/cli.py, a user sees an error as one line ``error: ...`` on stderr:
exit 2 for a flag error (unknown flag, wrong type, stray argument), exit 1 for bad
input (an ``AdvjaxError``: a malformed row names ``file:line``) or a file that cannot
be read or written (``OSError``). Unlike the training CLIs these import no JAX.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from typing import NoReturn

from absl import app, flags

from advjax.errors import AdvjaxError

FLAGS = flags.FLAGS


def fail(err: object, status: int = 1) -> NoReturn:
    """Prints ``error: err`` on stderr and exits with `status`."""
    print(f"error: {err}", file=sys.stderr, flush=True)
    sys.exit(status)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parser, with a bad flag or a stray argument reported on one line (exit 2)."""
    try:
        rest = FLAGS(argv)
    except flags.Error as err:
        fail(err, status=2)
    if len(rest) > 1:
        fail(f"unexpected arguments: {' '.join(rest[1:])}", status=2)
    return rest


def command_line(module: str, args: list[str] | None = None) -> str:
    """The command as a user would retype it: ``python -m MODULE ARGS...`` (args:
    default this process's arguments; absl hands `main` only the unparsed ones)."""
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if args is None else args)])


def run_main(main: Callable[[list[str]], None]) -> None:
    """Runs ``main(argv)`` as a CLI; an AdvjaxError or OSError ends it through `fail`."""

    def guarded(argv: list[str]) -> None:
        try:
            main(argv)
        except (AdvjaxError, OSError) as err:
            fail(err)

    app.run(guarded, flags_parser=parse_flags)
