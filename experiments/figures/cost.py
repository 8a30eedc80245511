"""cost (Table 9): seconds per epoch and in total of each method, measured here.

  python -m experiments.analyze --figure=cost --dataset=coat

Trains nothing to convergence: each method's flagfile configuration
(<dataset>_<backbone>_<stem>.flags) is timed in this process, one after another, by
experiments.timing.time_epochs (compiled first, then warm-up epochs, then the median of
the timed epochs of each pass; compilation is not counted). The total is that per-epoch
time times the mean number of epochs the method's published runs trained
(results/<dataset>.json, experiments.reproduce's "runs"), plus, for AdvInfoNCE, its
adversarial pass times the adversarial passes those runs made (their schedule,
advjax.train.schedule). The CSV's rows are the table; cost_DATASET.md shows it as
markdown beside the PNG.
"""

from __future__ import annotations

import dataclasses
import math
import os

import jax
import numpy as np

from advjax.errors import ConfigError
from advjax.files import write_atomically
from advjax.provenance import machine_info
from advjax.train.config import config_differences
from advjax.train.data import load_split
from advjax.train.schedule import is_adversarial_epoch
from advjax.train.sinks import print_flushed
from experiments.figures.base import Context, Figure, new_figure, save_png
from experiments.reproduce import published_runs
from experiments.run import read_flagfile
from experiments.timing import time_epochs

# Table 9's methods and their flagfile stems: the losses of Table 1, then the
# augmentations (their flagfiles exist for some datasets only).
METHODS = (
    ("InfoNCE", "infonce"),
    ("BPR", "bpr"),
    ("CCL", "ccl"),
    ("BC loss", "bc_loss"),
    ("Adap-tau", "adap_tau"),
    ("AdvInfoNCE", "advinfonce"),
    ("SGL", "sgl"),
    ("NCL", "ncl"),
    ("XSimGCL", "xsimgcl"),
)
BASELINE = "InfoNCE"
NA = "n/a"
RESULTS = "results"


def device_text() -> str:
    """What the timings ran on: 'cpu: <model>, 2 cores (jax X)' or the GPU's kind."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        info = machine_info()
        where = f"cpu: {info['cpu']}, {info['cores']} cores"
    else:
        where = device.device_kind
    return f"{where} (jax {jax.__version__})"


def published_epochs(published: dict, cell_name: str, cfg) -> tuple[list[int], list[int]]:
    """(epochs trained, adversarial passes made) of each published run of `cell_name`
    whose flags are cfg's (any seed); runs of another configuration are not counted.

    The passes follow the count-based schedule the flagfiles use (no --kl_radius,
    --adv_stop=budget): one before each scheduled epoch until e_adv have run.
    """
    epochs, passes = [], []
    for (name, seed), results in published.items():
        if name != cell_name:
            continue
        if config_differences(results.get("flags", {}), dataclasses.replace(cfg, seed=seed)):
            continue
        n = int(results["timing"]["epochs"])
        done = 0
        for epoch in range(n) if cfg.trains_adversary else ():
            if is_adversarial_epoch(epoch, done, t_adv=cfg.t_adv, e_adv=cfg.e_adv,
                                    warm_up_epochs=cfg.warm_up_epochs):  # fmt: skip
                done += 1
        epochs.append(n)
        passes.append(done)
    return epochs, passes


def _timed_config(cfg):
    # NCL's terms start at --ncl_start_epoch (20): time them in every epoch, as
    # benchmarks.record does, or its warm-up and timed epochs would run without them.
    return dataclasses.replace(cfg, ncl_start_epoch=0) if cfg.augment == "ncl" else cfg


def _skipped(method: str, note: str) -> dict:
    nan = float("nan")
    return {
        "method": method, "epoch_s": nan, "adv_epoch_s": nan, "epochs": nan,
        "adv_epochs": nan, "total_s": nan, "ratio_to_infonce": nan, "batches": nan,
        "full_batches": nan, "timed_epochs": nan, "load_1m": nan, "device": "", "note": note,
    }  # fmt: skip


def cost_rows(
    ctx: Context,
    *,
    methods: tuple[tuple[str, str], ...] = METHODS,
    results: str = RESULTS,
    warmup_epochs: int = 1,
    timed_epochs: int = 5,
    max_batches: int = 0,
    log=print_flushed,
) -> list[dict]:
    """One row per method: its measured seconds per epoch and estimated total.

    Args:
      ctx: the dataset, backbone and flagfile directory (ctx.seeds and ctx.runs unused).
      methods: (method, flagfile stem) pairs; the baseline (InfoNCE) must be one.
      results: the directory of <dataset>.json, whose "runs" give the epochs.
      warmup_epochs, timed_epochs: untimed, then timed epochs of each pass.
      max_batches: batches per timed epoch (0: whole epochs); a capped epoch's time
        is scaled up to the full epoch's batches (per-step work is the same).
      log: progress lines.

    Returns:
      Rows of method, epoch_s (CF pass), adv_epoch_s (AdvInfoNCE's adversarial pass;
      NaN for the others), epochs and adv_epochs (means over the published runs, "n/a"
      without any; adv_epochs NaN without an adversary), total_s, ratio_to_infonce
      (epoch_s over InfoNCE's), batches and full_batches (timed and whole epoch),
      timed_epochs, load_1m (the 1-minute load average when timed: the timings are
      this machine's at that load), device, note.
      A method without a flagfile gets a row with its note and no numbers.

    Raises:
      ConfigError: the baseline has no flagfile.
    """
    path = os.path.join(results, f"{ctx.dataset}.json")
    published = published_runs(path)
    device, splits, rows = device_text(), {}, []
    for method, stem in methods:
        cell = ctx.cell(method, stem)
        if not os.path.exists(cell.flagfile):
            if method == BASELINE:
                raise ConfigError(f"{cell.flagfile}: no such flagfile (the cost baseline)")
            rows.append(_skipped(method, f"skipped: no flagfile {cell.flagfile}"))
            continue
        cfg = read_flagfile(cell.flagfile)
        where = (cfg.dataset, cfg.data_dir, cfg.n_users, cfg.n_items, cfg.train_file)
        if where not in splits:
            splits[where] = load_split(cfg)
        load = os.getloadavg()[0]
        label = f"{ctx.dataset}/{ctx.backbone}/{cfg.loss_label}"
        times = time_epochs(
            splits[where], _timed_config(cfg), label=label, warmup_epochs=warmup_epochs,
            timed_epochs=timed_epochs, max_batches=max_batches,
            log=lambda line, m=method: log(f"cost {m}: {line.strip()}"),
        )  # fmt: skip
        # A capped epoch runs `batches` of the epoch's full_batches steps.
        scale = times.full_batches / times.n_batches
        epoch_s = times.epoch_s * scale
        adv_s = times.adv_epoch_s * scale if times.adv_epoch_s is not None else math.nan
        epochs, passes = published_epochs(published, cell.name, cfg)
        if epochs:
            mean_epochs, mean_passes = float(np.mean(epochs)), float(np.mean(passes))
            if math.isnan(adv_s):  # no adversary: no passes to count
                mean_passes, total = math.nan, epoch_s * mean_epochs
            else:
                total = epoch_s * mean_epochs + adv_s * mean_passes
            note = f"epochs: mean of {len(epochs)} published runs ({path})"
        else:
            mean_epochs = mean_passes = total = NA
            note = f"no published run of {cell.name} in {path}: total n/a"
        rows.append({
            "method": method, "epoch_s": epoch_s, "adv_epoch_s": adv_s, "epochs": mean_epochs,
            "adv_epochs": mean_passes, "total_s": total, "ratio_to_infonce": math.nan,
            "batches": times.n_batches, "full_batches": times.full_batches,
            "timed_epochs": timed_epochs,
            "load_1m": load, "device": device, "note": note,
        })  # fmt: skip
    base = next(r for r in rows if r["method"] == BASELINE)
    for row in rows:
        row["ratio_to_infonce"] = row["epoch_s"] / base["epoch_s"]
    return rows


def _number(value, spec: str) -> str:
    if isinstance(value, str):
        return value
    return "–" if math.isnan(value) else format(value, spec)


def markdown(rows: list[dict], ctx: Context) -> str:
    """The rows as a markdown table, with how they were measured."""
    measured = [r for r in rows if r["device"]]
    first = measured[0]
    capped = first["batches"] != first["full_batches"]
    lines = [
        f"# Training cost: {ctx.dataset} {ctx.backbone} (paper Table 9)",
        "",
        f"Measured on {first['device']}, all methods in one process, one after another "
        f"(1-minute load average {min(r['load_1m'] for r in measured):.2f} to "
        f"{max(r['load_1m'] for r in measured):.2f}). s/epoch: median of "
        f"{first['timed_epochs']} timed epochs of each pass after warm-up, compilation "
        "not counted; "
        + (
            f"{first['batches']} of {first['full_batches']} batches timed per epoch, "
            "scaled up to the whole epoch."
            if capped
            else "whole epochs."
        ),
        "Total = s/epoch x the mean epochs of the published runs (+ the adversarial "
        "pass x its mean passes).",
        "",
        "| Method | s/epoch | adv. pass s | x InfoNCE | epochs | adv. passes | total s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if not r["device"]:
            lines.append(f"| {r['method']} | – | – | – | – | – | – |")
            continue
        lines.append(
            f"| {r['method']} | {_number(r['epoch_s'], '.4f')} | "
            f"{_number(r['adv_epoch_s'], '.4f')} | {_number(r['ratio_to_infonce'], '.2f')} | "
            f"{_number(r['epochs'], '.1f')} | {_number(r['adv_epochs'], '.1f')} | "
            f"{_number(r['total_s'], '.2f')} |"
        )
    lines += ["", "Notes:"]
    lines += [f"- {r['method']}: {r['note']}" for r in rows]
    return "\n".join(lines) + "\n"


def plot_cost(rows: list[dict], ctx: Context, path: str) -> None:
    """Horizontal bars of s/epoch per method (InfoNCE highlighted, ratios annotated);
    writes the markdown table beside the PNG."""
    write_atomically(path.removesuffix(".png") + ".md", markdown(rows, ctx))
    fig, (ax,) = new_figure(6.4, 0.4 * len(rows) + 1.4)
    positions = np.arange(len(rows))
    widest = max(r["epoch_s"] for r in rows if r["device"])
    for y, r in zip(positions, rows, strict=True):
        if not r["device"]:
            ax.text(0, y, "  no flagfile", va="center", fontsize=8, color="grey")
            continue
        colour = "tab:blue" if r["method"] == BASELINE else "tab:grey"
        colour = "tab:red" if r["method"] == "AdvInfoNCE" else colour
        ax.barh(y, r["epoch_s"], color=colour, height=0.6)
        text = f" {r['ratio_to_infonce']:.2f}x"
        if not math.isnan(r["adv_epoch_s"]):
            text += f" (adv. pass {r['adv_epoch_s']:.3g} s)"
        ax.text(r["epoch_s"], y, text, va="center", fontsize=8)
    ax.set_yticks(positions, [r["method"] for r in rows])
    ax.set_ylim(len(rows) - 0.4, -0.6)  # first method on top
    ax.set_xlim(0, widest * 1.6)
    ax.set_xlabel("seconds per epoch (CF pass)")
    ax.grid(axis="x", alpha=0.3)
    device = next(r["device"] for r in rows if r["device"])
    ax.set_title(f"{ctx.dataset} {ctx.backbone}: s/epoch, x InfoNCE\n{device}", fontsize=9)
    save_png(fig, path)


FIGURE = Figure(
    name="cost",
    title="Table 9: training cost per epoch and in total",
    paper=(
        "Table 9: training cost on Tencent (V100): LightGCN + InfoNCE 41.2 s/epoch, "
        "LightGCN + AdvInfoNCE 44.6 s/epoch (about 1.08x), beside the other methods."
    ),
    cells=lambda ctx: [],
    rows=cost_rows,
    plot=plot_cost,
)
