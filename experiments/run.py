"""Train and evaluate one configuration.

  python -m experiments.run                                  # MF + AdvInfoNCE on Coat
  python -m experiments.run --flagfile=experiments/configs/coat_mf_advinfonce.flags
  python -m experiments.run --data_dir=../shared/data/yahoo.new --n_layers=2 --loss=infonce

Every flag is a TrainConfig field (advjax/train/config.py), plus --workdir.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import jax
from absl import app, flags, logging

from advjax.errors import AdvjaxError, ConfigError
from advjax.train import TrainConfig, train_and_evaluate
from advjax.train.checkpoints import load_run_config


def _define_flags() -> None:
    for field in dataclasses.fields(TrainConfig):
        default, name, help_text = field.default, field.name, field.metadata["help"]
        if isinstance(default, bool):
            flags.DEFINE_bool(name, default, help_text)
        elif isinstance(default, int):
            flags.DEFINE_integer(name, default, help_text)
        elif isinstance(default, float):
            flags.DEFINE_float(name, default, help_text)
        elif isinstance(default, tuple):
            flags.DEFINE_list(name, [str(k) for k in default], help_text)
        else:
            flags.DEFINE_string(name, default, help_text)
    flags.DEFINE_string(
        "workdir",
        "",
        "Checkpoints and results.json; default runs/<dataset>-<backbone>-<loss>. A workdir "
        "holding checkpoints of the same configuration is resumed from the newest.",
    )
    flags.DEFINE_bool(
        "restart", False, "Discard the workdir's checkpoints of another configuration."
    )
    flags.DEFINE_integer("max_to_keep", 3, "Newest state checkpoints kept in the workdir.")
    flags.DEFINE_bool(
        "test_only",
        False,
        "Evaluate the best checkpoint of --workdir on every split, with the configuration "
        "saved there; no training.",
    )
    flags.DEFINE_string(
        "compilation_cache",
        os.environ.get("JAX_COMPILATION_CACHE_DIR")
        or os.path.join(os.path.expanduser("~"), ".cache", "advjax", "xla"),
        "Persistent XLA compilation cache (default: $JAX_COMPILATION_CACHE_DIR, else "
        "~/.cache/advjax/xla): a second run of the same shapes skips most of its compile "
        "time. Empty disables it.",
    )


_define_flags()
FLAGS = flags.FLAGS


SETTING_KINDS = {field.name: type(field.default) for field in dataclasses.fields(TrainConfig)}


def setting_from_text(name: str, text: str):
    """The value of TrainConfig field `name` written as flag text ("10,20" for ks).

    Raises:
      KeyError: `name` is no TrainConfig field.
      ValueError: `text` is not a value of the field's type (SETTING_KINDS[name]).
    """
    kind = SETTING_KINDS[name]
    if kind is tuple:
        return tuple(int(v) for v in text.split(","))
    return kind(text)


def config_from_flags() -> TrainConfig:
    values = {}
    for field in dataclasses.fields(TrainConfig):
        value = FLAGS[field.name].value
        if isinstance(field.default, tuple):
            try:
                value = tuple(int(k) for k in value)
            except ValueError:
                raise ConfigError(f"--{field.name} takes integers, got {','.join(value)}") from None
        values[field.name] = value
    return TrainConfig(**values)


def default_workdir(cfg: TrainConfig) -> str:
    name = os.path.basename(os.path.normpath(cfg.data_dir)) if cfg.data_dir else cfg.dataset
    backbone = f"lightgcn{cfg.n_layers}" if cfg.n_layers else "mf"
    loss = cfg.loss
    if cfg.trains_adversary:
        loss += f"-{cfg.hardness}"
    if cfg.uses_hardness and cfg.hardness_strategy != "adversarial":
        loss += f"-{cfg.hardness_strategy}"
    return os.path.join("runs", f"{name}-{backbone}-{loss}")


def is_progress_line(line: str) -> bool:
    """Whether a training log line is worth printing when many runs share one output
    (experiments.search, experiments.reproduce): validations, early stops and
    resumptions, not every epoch."""
    return " | valid " in line or line.startswith(("early stop", "resumed"))


def progress_log(prefix: str, out=print):
    """A train_and_evaluate log that passes only the progress lines on to `out`, each
    after `prefix` (the run's name in a sweep)."""

    def log(line: str) -> None:
        if is_progress_line(line):
            out(f"{prefix}: {line}")

    return log


def use_compilation_cache(path: str) -> None:
    """Persistent XLA compilation cache in `path` (empty: none)."""
    if path:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.WARNING)  # progress goes to stdout; keep library chatter out
    use_compilation_cache(FLAGS.compilation_cache)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    print(
        f"JAX {jax.__version__}; platform {jax.default_backend()}; devices {jax.devices()}",
        flush=True,
    )
    try:
        if FLAGS.test_only:
            if not FLAGS.workdir:
                raise ConfigError("--test_only needs --workdir")
            cfg = load_run_config(FLAGS.workdir)
        else:
            cfg = config_from_flags()
        train_and_evaluate(
            cfg,
            FLAGS.workdir or default_workdir(cfg),
            restart=FLAGS.restart,
            max_to_keep=FLAGS.max_to_keep,
            test_only=FLAGS.test_only,
        )
    except (AdvjaxError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # Not sys.exit: after a failed write, Orbax's and TensorBoard's exit hooks retry
        # it and print tracebacks over the one-line error.
        os._exit(1)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parser, with a bad flag or flagfile reported on one line (exit 2)."""
    try:
        return FLAGS(argv)
    except flags.Error as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
