"""The benchmark's cells: DATASET/BACKBONE/LOSS, each dataset's settings, and which
cells a run selects (all, the quick ones, or those matching --only)."""

from __future__ import annotations

import dataclasses
import fnmatch

from absl import app


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives under --data_root and the settings it is timed with."""

    directory: str
    batch_size: int
    n_neg: int
    tau: float
    timed_epochs: int
    note: str
    train_file: str | None = None


DATASETS = {
    "yahoo": DatasetSpec("yahoo.new", 1024, 64, 0.28, 3, "Yahoo!R3 settings of SPEC §3"),
    "kuairec": DatasetSpec(
        "kuairec2", 2048, 128, 2.0, 2, "KuaiRec settings of SPEC §3", "train_reconstructed"
    ),
    "gowalla": DatasetSpec(
        "gowalla", 2048, 128, 0.1, 2, "no paper cell; batch 2048, N 128, tau 0.1 by choice"
    ),
}
# Each backbone cell: its --backbone and its own settings (LightGCN: the paper's 2 layers).
BACKBONES = {
    "mf": {"backbone": "mf"},
    "lightgcn": {"backbone": "lightgcn", "n_layers": 2},
    "vgae": {"backbone": "vgae", "n_layers": 2},
    "ultragcn": {"backbone": "ultragcn"},
}
LOSSES = ("infonce", "adv_infonce")
# LightGCN + InfoNCE with each augmentation (--augment): Table 9's other rows.
AUGMENTED = ("infonce+sgl", "infonce+ncl", "infonce+xsimgcl")
QUICK_CELLS = ("yahoo/mf/adv_infonce", "yahoo/lightgcn/adv_infonce")
QUICK_MAX_BATCHES = 24
QUICK_TIMED_EPOCHS = 2


def all_cells() -> list[str]:
    plain = [f"{d}/{b}/{loss}" for d in DATASETS for b in BACKBONES for loss in LOSSES]
    return plain + [f"{d}/lightgcn/{loss}" for d in DATASETS for loss in AUGMENTED]


def select_cells(patterns: list[str], quick: bool) -> list[str]:
    """Cells matching any pattern; no pattern = all cells, or the quick ones."""
    if not patterns:
        return list(QUICK_CELLS) if quick else all_cells()
    cells = [c for c in all_cells() if any(fnmatch.fnmatchcase(c, p) for p in patterns)]
    if not cells:
        raise app.UsageError(f"--only={','.join(patterns)} matches no cell of {all_cells()}")
    return cells
