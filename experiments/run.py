"""Train and evaluate one configuration.

  python -m experiments.run                                  # MF + AdvInfoNCE on Coat
  python -m experiments.run --flagfile=experiments/configs/coat_mf_advinfonce.flags
  python -m experiments.run --data_dir=../shared/data/yahoo.new --backbone=lightgcn --n_layers=2 \\
      --loss=infonce
  python -m experiments.run --flagfile=experiments/configs/coat_mf_infonce.flags --seeds=1,2,3

Every flag is a TrainConfig field (advjax/train/config.py), plus --workdir, --restart,
--max_to_keep, --test_only, --seeds, --mesh (and --coordinator_address, --num_processes,
--process_id for several processes), --run_batching and --compilation_cache
(experiments/cli.py, which also says how errors end the run). With --seeds the runs
train in one program (advjax/train/multirun.py), each in <workdir>/seed<S>, and a table of
their test metrics, mean and std closes the output.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np
from absl import flags

from advjax import distributed
from advjax.errors import ConfigError, WorkdirError
from advjax.files import read_json_object
from advjax.train import TrainConfig, train_and_evaluate
from advjax.train.checkpoints import load_run_config
from advjax.train.config import config_differences
from advjax.train.multirun import train_runs
from experiments import cli


def define_config_flags(flag_values: flags.FlagValues) -> None:
    """Defines one flag per TrainConfig field, with its default and help, in
    `flag_values` (flags.FLAGS for the CLIs; a fresh FlagValues to read a flagfile alone,
    as experiments.reproduce does)."""
    for field in dataclasses.fields(TrainConfig):
        default, name, help_text = field.default, field.name, field.metadata["help"]
        if isinstance(default, bool):
            define = flags.DEFINE_bool
        elif isinstance(default, int):
            define = flags.DEFINE_integer
        elif isinstance(default, float):
            define = flags.DEFINE_float
        elif isinstance(default, tuple):
            define, default = flags.DEFINE_list, [str(k) for k in default]
        else:
            define = flags.DEFINE_string
        define(name, default, help_text, flag_values=flag_values)


def _define_run_flags() -> None:
    """This CLI's own flags; defined when it runs, not when the other CLIs import this
    module (experiments.reproduce has a --seeds of its own)."""
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
    flags.DEFINE_list(
        "seeds",
        [],
        "Train these seeds (instead of --seed) in one compiled program, each run in "
        "<workdir>/seed<S>; e.g. 1,2,3,4,5.",
    )
    flags.DEFINE_string(
        "mesh",
        "",
        "Train on a device mesh (advjax/sharding.py): 'data:D,model:M' splits batches over D "
        "devices and the user/item tables (and their Adam moments) row-wise over M; 'auto' "
        "puts every device on data unless the tables exceed 2 GiB per device (with one "
        "device: no mesh). Empty: one device. Results match one device up to float32 "
        "reordering; a run resumes on any mesh.",
    )
    flags.DEFINE_string(
        "coordinator_address",
        "",
        "host:port of process 0 when one run spans several processes (hosts): every "
        "process runs the same command with its own --process_id; the mesh spans all "
        "their devices (--mesh=auto when not given) and process 0 writes the workdir.",
    )
    flags.DEFINE_integer("num_processes", 1, "Processes in the run (--coordinator_address).")
    flags.DEFINE_integer("process_id", 0, "This process's index, 0..num_processes-1.")


define_config_flags(flags.FLAGS)
FLAGS = flags.FLAGS


CONFIG_FIELDS = frozenset(field.name for field in dataclasses.fields(TrainConfig))


def setting_from_text(name: str, text: str):
    """The value of TrainConfig field `name` written as flag text, read by that flag's
    own absl parser ("0.5" for tau; "10,20" for ks, as a tuple of ints).

    Raises:
      KeyError: `name` is no TrainConfig field.
      ValueError: `text` is not a value of the flag's type.
    """
    if name not in CONFIG_FIELDS:
        raise KeyError(name)
    value = FLAGS[name].parser.parse(text)
    return tuple(int(k) for k in value) if isinstance(value, list) else value


def config_from_flags(flag_values: flags.FlagValues = FLAGS) -> TrainConfig:
    """The TrainConfig of parsed flags (`define_config_flags`'s).

    Raises:
      ConfigError: a cut-off list holds a non-integer, or a setting is out of range.
    """
    values = {}
    for field in dataclasses.fields(TrainConfig):
        value = flag_values[field.name].value
        if isinstance(field.default, tuple):
            try:
                value = tuple(int(k) for k in value)
            except ValueError:
                raise ConfigError(f"--{field.name} takes integers, got {','.join(value)}") from None
        values[field.name] = value
    return TrainConfig(**values)


def read_flagfile(path: str) -> TrainConfig:
    """The TrainConfig of a flagfile, read by absl's own parser (as `experiments.run
    --flagfile=path` reads it) into flags of the TrainConfig fields alone.

    Raises:
      ConfigError: naming `path`, when the file cannot be read or holds an unknown flag
        (also one of the CLIs' own, such as --workdir), a value of the wrong type, or a
        line that is no flag.
    """
    flag_values = flags.FlagValues()
    define_config_flags(flag_values)
    try:
        rest = flag_values(["flagfile", f"--flagfile={path}"])
    except flags.UnrecognizedFlagError as err:
        raise ConfigError(f"{path}: unknown flag --{err.flagname}") from None
    except flags.Error as err:
        raise ConfigError(f"{path}: {str(err).removeprefix('ERROR:: ')}") from None
    if len(rest) > 1:
        raise ConfigError(f"{path}: not a flag: {' '.join(rest[1:])}")
    try:
        return config_from_flags(flag_values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def finished_results(workdir: str, cfg: TrainConfig) -> dict | None:
    """The workdir's results.json when that run finished with exactly `cfg`, else None.

    Read as is rather than re-evaluated, so a run trained on another machine (a GPU
    host) counts once its results.json, metrics.jsonl and config.json are copied here.
    """
    path = os.path.join(workdir, "results.json")
    if not os.path.exists(path):
        return None
    results, problem = read_json_object(path)
    if problem:
        raise WorkdirError(f"{path}: {problem}; delete it to train this run again")
    if config_differences(results.get("flags", {}), cfg):
        return None
    return results


def default_workdir(cfg: TrainConfig) -> str:
    """runs/<dataset>-<backbone>-<loss label>, e.g. runs/coat-mf-adv_infonce-embed;
    runs/<dataset>-<model> for a fitted model (runs/yahoo-ials)."""
    name = os.path.basename(os.path.normpath(cfg.data_dir)) if cfg.data_dir else cfg.dataset
    return os.path.join("runs", f"{name}-{cfg.slug}")


def main(argv: list[str]) -> None:
    del argv  # cli_base.parse_flags refuses stray arguments
    joined = distributed.initialize(
        FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id
    )
    mesh = FLAGS.mesh or ("auto" if joined and jax.process_count() > 1 else "")
    print(
        f"JAX {jax.__version__}; platform {jax.default_backend()}; devices {jax.devices()}"
        + (f"; process {jax.process_index()} of {jax.process_count()}" if joined else ""),
        flush=True,
    )
    if FLAGS.seeds:
        _train_seeds(config_from_flags())
        return
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
        mesh=mesh,
    )


def parse_seeds(texts: list[str]) -> list[int]:
    """--seeds as distinct integers, in the order given."""
    try:
        seeds = [int(text) for text in texts]
    except ValueError:
        raise ConfigError(f"--seeds takes integers, got {','.join(texts)}") from None
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds names a seed twice: {','.join(texts)}")
    return seeds


def seeds_table(results: list[dict]) -> str:
    """Each seed's test metrics at its best epoch, then their mean and sample std."""
    splits = [name for name in results[0] if name.startswith("test")]
    columns = [(split, metric) for split in splits for metric in ("recall@20", "ndcg@20")]
    lines = ["seed | best epoch | " + " | ".join(f"{s} {m}" for s, m in columns)]
    for record in results:
        values = " | ".join(f"{record[s][m]:.4f}" for s, m in columns)
        lines.append(f"{record['flags']['seed']} | {record['best_epoch']} | {values}")
    summaries = [("mean", np.mean)]
    if len(results) > 1:
        summaries.append(("std", lambda values: np.std(values, ddof=1)))
    for label, reduce in summaries:
        values = " | ".join(f"{reduce([r[s][m] for r in results]):.4f}" for s, m in columns)
        lines.append(f"{label} | | {values}")
    return "\n".join(lines)


def _train_seeds(cfg: TrainConfig) -> None:
    """--seeds: the runs in one program, then their table."""
    if FLAGS.test_only:
        raise ConfigError("--test_only evaluates one workdir; give it without --seeds")
    if FLAGS.mesh or FLAGS.coordinator_address:
        raise ConfigError(
            "--mesh and --coordinator_address train one run; give them without --seeds"
        )
    seeds = parse_seeds(FLAGS.seeds)
    root = FLAGS.workdir or default_workdir(cfg)
    results = train_runs(
        [dataclasses.replace(cfg, seed=seed) for seed in seeds],
        [os.path.join(root, f"seed{seed}") for seed in seeds],
        restart=FLAGS.restart,
        max_to_keep=FLAGS.max_to_keep,
        batching=FLAGS.run_batching,
    )
    print(seeds_table(results), flush=True)


if __name__ == "__main__":
    _define_run_flags()
    cli.run_main(main)
