"""What the experiment CLIs (run, search, reproduce, fidelity) share: how they read
their flags, the flags they all take (--compilation_cache, --run_batching), how they set
JAX up, and how they stop.

A user sees an error as one line `error: ...` on stderr: exit 2 for a flag error (an
unknown flag, also in a flagfile; a value of the wrong type; a stray argument), exit 1
for any other error of theirs (AdvjaxError) or a file that cannot be read or written
(OSError).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

import jax
from absl import flags, logging

from advjax.cli_base import run_guarded
from advjax.train.multirun import RUN_BATCHING

flags.DEFINE_string(
    "compilation_cache",
    os.environ.get("JAX_COMPILATION_CACHE_DIR")
    or os.path.join(os.path.expanduser("~"), ".cache", "advjax", "xla"),
    "Persistent XLA compilation cache (default: $JAX_COMPILATION_CACHE_DIR, else "
    "~/.cache/advjax/xla): a second run of the same shapes skips most of its compile "
    "time. Empty disables it.",
)
flags.DEFINE_enum(
    "run_batching",
    "map",
    RUN_BATCHING,
    "How one program trains several runs (run --seeds, reproduce's seeds, search's "
    "points; advjax/train/multirun.py): map (one after another inside it; a run's results "
    "bit-identical to it alone) or vmap (side by side in every kernel; equal to float32 "
    "rounding).",
)
FLAGS = flags.FLAGS


def fail(err: object, status: int = 1) -> NoReturn:
    """Prints `error: err` on stderr and ends the process with `status`."""
    print(f"error: {err}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    # Not sys.exit: after a failed write, Orbax's and TensorBoard's exit hooks retry it
    # and print tracebacks over the one-line error.
    os._exit(status)


def use_compilation_cache(path: str) -> None:
    """Persistent XLA compilation cache in `path` (empty: none)."""
    if path:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def run_main(main: Callable[[list[str]], None]) -> None:
    """Runs `main(argv)` as a CLI (advjax/cli_base.py): library logging at warnings only
    (progress goes to stdout), the --compilation_cache in use, and an AdvjaxError or
    OSError ending the process through `fail`."""

    def setup() -> None:
        logging.set_verbosity(logging.WARNING)
        use_compilation_cache(FLAGS.compilation_cache)

    run_guarded(main, fail, setup)
