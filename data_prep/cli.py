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

from advjax.cli_base import run_guarded


def fail(err: object, status: int = 1) -> NoReturn:
    """Prints ``error: err`` on stderr and exits with `status`."""
    print(f"error: {err}", file=sys.stderr, flush=True)
    sys.exit(status)


def command_line(module: str, args: list[str] | None = None) -> str:
    """The command as a user would retype it: ``python -m MODULE ARGS...`` (args:
    default this process's arguments; absl hands `main` only the unparsed ones)."""
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if args is None else args)])


def run_main(main: Callable[[list[str]], None]) -> None:
    """Runs ``main(argv)`` as a CLI (advjax/cli_base.py); errors end it through `fail`."""
    run_guarded(main, fail)
