"""Tiny trained runs for the figures that restore checkpoints (hardness_popularity,
case_study) and for advjax.train.finished's tests: a skewed synthetic split of 30 users
and 40 items, trained for 4 epochs with two adversarial passes."""

from __future__ import annotations

import os

import numpy as np

from experiments.figures.base import Context
from experiments.figures.strategies import strategy_cells
from experiments.reproduce import run_cell_seeds
from tests.figures.records import context

N_USERS, N_ITEMS, N_NEG = 30, 40, 8
# 150 training pairs: 4 batches of 32 an epoch; adversarial passes before epochs 2 and 4.
COMMON = ["--n_layers=2", "--emb_dim=8", "--batch_size=32", "--eval_batch_size=16",
          "--eval_every=1", "--max_epochs=4", "--patience=10", f"--n_neg={N_NEG}", "--tau=0.5",
          "--lr=0.05"]  # fmt: skip
FLAGS = {
    "infonce": ["--loss=infonce"],
    "advinfonce": [
        "--loss=adv_infonce",
        f"--k_neg={N_NEG}",
        "--lr_adv=0.05",
        "--t_adv=2",
        "--e_adv=2",
    ],  # fmt: skip
}


def write_split(root: str) -> str:
    """Each user: 5 training items, 1 valid, 2 test_id and 2 test_ood (one shared),
    drawn without replacement with weight 1 / (item + 1), so item degrees are skewed."""
    os.makedirs(root)
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, N_ITEMS + 1)
    files = {"train": [], "valid": [], "test_id": [], "test_ood": []}
    for _ in range(N_USERS):
        items = rng.choice(N_ITEMS, 9, replace=False, p=weights / weights.sum())
        files["train"].append(items[:5])
        files["valid"].append(items[5:6])
        files["test_id"].append(items[6:8])
        files["test_ood"].append(items[7:9])
    for name, rows in files.items():
        text = "".join(f"{u} {' '.join(map(str, items))}\n" for u, items in enumerate(rows))
        with open(os.path.join(root, f"{name}.txt"), "w") as f:
            f.write(text)
    return root


def train_tiny_runs(tmp_path, seeds=(1, 2), *, infonce: bool = True) -> Context:
    """A Context over tmp_path whose AdvInfoNCE cell (strategy_cells(ctx)[3]) is trained
    at `seeds` and, with `infonce`, its InfoNCE cell ([0]) at seeds[0]."""
    ctx = context(tmp_path, seeds=seeds)
    data_dir = write_split(os.path.join(str(tmp_path), "split"))
    for stem, flags in FLAGS.items():
        lines = [f"--data_dir={data_dir}", *COMMON, *flags]
        with open(os.path.join(ctx.configs, f"tiny_lightgcn_{stem}.flags"), "w") as f:
            f.write("\n".join(lines) + "\n")
    cells = strategy_cells(ctx)
    quiet = {seed: (lambda line: None) for seed in seeds}
    run_cell_seeds(cells[3], list(seeds), ctx.runs, quiet)
    if infonce:
        run_cell_seeds(cells[0], [seeds[0]], ctx.runs, quiet)
    return ctx


def read_split_file(ctx: Context, name: str) -> dict[int, list[int]]:
    """{user: items} of one file of the tiny split."""
    path = os.path.join(os.path.dirname(ctx.configs), "split", f"{name}.txt")
    with open(path) as f:
        return {int(u): [int(i) for i in rest] for u, *rest in (line.split() for line in f)}
