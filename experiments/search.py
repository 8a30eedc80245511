"""Validation search: a base configuration over a grid, chosen by valid Recall@20.

  python -m experiments.search --flagfile=experiments/configs/coat_mf_infonce.flags \\
      --loss=ccl --grid="ccl_margin=0.2,0.4,0.6;ccl_neg_weight=1,10" \\
      --out=results/search/coat_mf_ccl.json

Every flag of experiments.run sets the base configuration; --grid names TrainConfig
fields with comma-separated values ("name=v1,v2;name2=..."). Each grid point trains
in-process (the split is loaded once) and is appended to --out as soon as it finishes,
so a killed search resumes where it stopped; a point cut short resumes from its last
checkpoint, in its workdir under --runs (runs/search/<out's name>/<point>). Points
that differ only in settings one program may vary (--batch_points;
advjax/train/multirun.py: learning rates, temperatures, loss weights, schedule, budgets)
train together in one program and are appended when the last of them stops; their
numbers equal the points trained alone to float32 rounding (a traced setting is an
input there, a constant alone). The point with the best valid Recall@20 wins; the test
metrics are recorded beside it, never used to choose. The winner's flag lines are
printed, ready for a flagfile header.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import time

from absl import flags

from advjax.errors import ConfigError
from advjax.files import read_json_object, write_atomically
from advjax.metrics import SELECTION_METRIC
from advjax.train import TrainConfig, train_and_evaluate
from advjax.train.config import config_dict, config_differences, format_differences
from advjax.train.data import load_split
from advjax.train.multirun import HOST_SETTINGS, TRACED_SETTINGS, train_runs
from advjax.train.sinks import ProgressLines
from experiments import cli, run

flags.DEFINE_string("grid", "", 'Grid over TrainConfig fields: "name=v1,v2;name2=v3,v4".')
flags.DEFINE_string("out", "", "JSON record of every point (appended as points finish).")
flags.DEFINE_bool(
    "batch_points",
    True,
    "Train points that differ only in settings one program may vary (seed, schedule, "
    "budgets, patience, tau, lr, lr_adv, l2_reg, loss weights) in one program; "
    "--nobatch_points trains them one by one.",
)

FLAGS = flags.FLAGS


def define_flags() -> None:
    """--runs, defined only when this module runs as a program: experiments.reproduce,
    imported beside it in the tests, has a --runs of its own."""
    flags.DEFINE_string(
        "runs",
        "runs/search",
        "Root of the points' checkpointed workdirs, one folder per --out (a killed point "
        "resumes from its last checkpoint); empty: no checkpoints.",
    )


def parse_grid(text: str) -> list[dict]:
    """'a=1,2;b=x' -> [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}], typed by TrainConfig.

    Raises:
      ConfigError: on an unknown field or a value of the wrong type.
    """
    axes = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, values = part.partition("=")
        name = name.strip()
        if name not in run.CONFIG_FIELDS:
            raise ConfigError(f"--grid: unknown setting {name!r}")
        try:
            axes.append(
                [
                    (name, run.setting_from_text(name, v.strip()))
                    for v in values.split(",")
                    if v.strip()
                ]
            )
        except ValueError:
            kind = run.FLAGS[name].flag_type()
            raise ConfigError(f"--grid: {name} takes {kind} values, got {values!r}") from None
    return [dict(point) for point in itertools.product(*axes)]


def _key(point: dict) -> str:
    return json.dumps(point, sort_keys=True)


def point_workdir(runs: str, point: dict) -> str:
    """runs/<name=value,...> for one grid point, names sorted; a hash of that where it
    would be too long for a file name."""
    name = ",".join(f"{k}={v}" for k, v in sorted(point.items())).replace(os.sep, "_")
    if len(name) > 120:
        name = "point-" + hashlib.sha256(name.encode()).hexdigest()[:16]
    return os.path.join(runs, name)


def _save(record: dict, out: str) -> None:
    if out:
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        write_atomically(out, json.dumps(record, indent=1))


def point_groups(
    base: TrainConfig, points: list[tuple[int, dict]], batch: bool
) -> list[list[tuple[int, dict]]]:
    """The (index, point) pairs in groups trained together: with `batch`, points whose
    configurations differ only in what one program may vary (advjax/train/multirun.py)
    share a group, in order of their first point; else one group per point."""
    if not batch:
        return [[item] for item in points]
    groups: dict[str, list[tuple[int, dict]]] = {}
    varying = set(HOST_SETTINGS) | set(TRACED_SETTINGS)
    for index, point in points:
        fixed = {k: v for k, v in config_dict(dataclasses.replace(base, **point)).items()
                 if k not in varying}  # fmt: skip
        groups.setdefault(_key(fixed), []).append((index, point))
    return list(groups.values())


def search(
    base: TrainConfig,
    points: list[dict],
    out: str,
    log=print,
    batch: bool = True,
    batching: str = "map",
    runs: str = "",
) -> dict:
    """Runs the points not yet in `out`; returns the record with the winner ("best"),
    which is also `out`'s last version (every version written atomically). With `batch`,
    points differing only in settings one program may vary train together
    (`batching`: advjax/train/multirun.py), and are recorded when their group ends. With
    `runs`, each point trains in its workdir there (point_workdir), checkpointed: a
    point killed before it finished resumes from its newest checkpoint; "" writes
    nothing but `out`."""
    record = {"base": config_dict(base), "select_by": f"valid/{SELECTION_METRIC}", "points": []}
    if out and os.path.exists(out):
        record, problem = read_json_object(out)
        if problem:
            raise ConfigError(f"{out}: {problem}; move it aside")
        if not (isinstance(record.get("base"), dict) and isinstance(record.get("points"), list)):
            raise ConfigError(f"{out}: not a search record (no base and points); move it aside")
        differences = config_differences(record["base"], base)
        if differences:
            raise ConfigError(
                f"{out} holds a search of another base configuration "
                f"({format_differences(differences)})"
            )
    done = {_key(p["point"]) for p in record["points"]}
    data = load_split(base)
    todo = [(index, point) for index, point in enumerate(points) if _key(point) not in done]
    for group in point_groups(base, todo, batch):
        tick = time.perf_counter()
        cfgs = [dataclasses.replace(base, **point) for _, point in group]
        sinks = [
            [ProgressLines(log, prefix=f"[{i + 1}/{len(points)}] {p}: ", every_epoch=False)]
            for i, p in group
        ]
        workdirs = [point_workdir(runs, point) if runs else None for _, point in group]
        if len(group) == 1:
            results = [train_and_evaluate(cfgs[0], workdirs[0], data=data, sinks=sinks[0])]
        else:
            results = train_runs(cfgs, workdirs, data=data, sinks=sinks, batching=batching)
        seconds = round(time.perf_counter() - tick, 1)
        for (index, point), result in zip(group, results, strict=True):
            entry = {
                "point": point,
                "seconds": seconds,
                **{
                    name: value
                    for name, value in result.items()
                    if name not in ("flags", "timing", "data")
                },
            }
            if len(group) > 1:
                entry["runs_in_program"] = len(group)
            record["points"].append(entry)
            valid = entry.get("valid", {}).get(SELECTION_METRIC, float("nan"))
            log(
                f"[{index + 1}/{len(points)}] {point}: valid {SELECTION_METRIC} {valid:.4f}, "
                f"{entry['seconds']} s"
            )
        _save(record, out)
    wanted = {_key(p) for p in points}
    mine = [p for p in record["points"] if _key(p["point"]) in wanted]
    best = max(mine, key=lambda p: p.get("valid", {}).get(SELECTION_METRIC, float("-inf")))
    record["best"] = best
    _save(record, out)
    return record


def main(argv: list[str]) -> None:
    del argv  # cli_base.parse_flags refuses stray arguments
    points = parse_grid(FLAGS.grid)
    if not points:
        raise ConfigError("--grid is empty")
    runs = ""
    if FLAGS.runs and FLAGS.out:
        runs = os.path.join(FLAGS.runs, os.path.splitext(os.path.basename(FLAGS.out))[0])
    record = search(
        run.config_from_flags(), points, FLAGS.out, batch=FLAGS.batch_points,
        batching=FLAGS.run_batching, runs=runs,
    )  # fmt: skip
    best = record["best"]
    metrics = {
        name: value[SELECTION_METRIC]
        for name, value in best.items()
        if isinstance(value, dict) and SELECTION_METRIC in value
    }
    print(
        f"best by valid {SELECTION_METRIC}: {best['point']} -> {metrics}, "
        f"epoch {best['best_epoch']}"
    )
    for name, value in best["point"].items():
        print(f"--{name}={value}")


if __name__ == "__main__":
    define_flags()
    cli.run_main(main)
