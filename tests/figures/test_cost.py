"""cost: timings of tiny flagfiles measured over one batch, ratios and totals by hand,
missing flagfiles skipped with a note, published epochs of the same configuration only."""

import dataclasses
import functools
import json
import os

import pytest

from advjax.train.config import config_dict
from experiments.analyze import draw
from experiments.figures import cost
from experiments.figures.base import read_csv
from experiments.run import read_flagfile
from tests.figures.records import context, expected_size, png_size

# A tiny split: 12 users with 5 training items each of 20 (60 pairs: 3 batches of 16).
N_USERS, N_ITEMS = 12, 20
COMMON = ["--n_layers=2", "--batch_size=16", "--eval_batch_size=8", "--eval_every=1"]
FLAGS = {
    "infonce": ["--loss=infonce", "--n_neg=4"],
    "bpr": ["--loss=bpr", "--n_neg=1"],
    "advinfonce": ["--loss=adv_infonce", "--n_neg=4", "--k_neg=4", "--t_adv=5", "--e_adv=3"],
}


def _write_split(root) -> str:
    root.mkdir()
    files = {"train": [], "valid": [], "test_id": [], "test_ood": []}
    for user in range(N_USERS):
        items = [(user * 3 + k) % N_ITEMS for k in range(8)]
        files["train"].append(items[:5])
        files["valid"].append(items[5:6])
        files["test_id"].append(items[6:8])
        files["test_ood"].append(items[6:8])
    for name, rows in files.items():
        text = "".join(f"{u} {' '.join(map(str, items))}\n" for u, items in enumerate(rows))
        (root / f"{name}.txt").write_text(text)
    return str(root)


def _published(ctx, run_epochs: dict[str, list[tuple[int, dict]]]) -> None:
    """results/tiny.json with runs of the cells: (epochs, flag changes) per seed."""
    runs = []
    for stem, seeds in run_epochs.items():
        cell = ctx.cell("?", stem)
        cfg = read_flagfile(cell.flagfile)
        for seed, (epochs, changes) in enumerate(seeds, 1):
            flags = config_dict(dataclasses.replace(cfg, seed=seed, **changes))
            results = {"flags": flags, "timing": {"epochs": epochs}, "epochs_s": 1.0}
            runs.append({"cell": cell.name, "seed": seed, "results": results})
    path = os.path.join(os.path.dirname(ctx.configs), "results", "tiny.json")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        json.dump({"runs": runs}, f)


def test_ratios_totals_skips_and_the_png(tmp_path):
    ctx = context(tmp_path)
    data_dir = _write_split(tmp_path / "split")
    for stem, flags in FLAGS.items():
        lines = [f"--data_dir={data_dir}", *COMMON, *flags]
        (tmp_path / "configs" / f"tiny_lightgcn_{stem}.flags").write_text("\n".join(lines) + "\n")
    _published(ctx, {
        "infonce": [(10, {}), (20, {})],
        # The second run has another tau: not this flagfile's, not counted.
        "advinfonce": [(12, {}), (40, {"tau": 0.5})],
    })  # fmt: skip
    figure = cost.FIGURE._replace(
        rows=functools.partial(cost.cost_rows, results=str(tmp_path / "results"),
                               timed_epochs=1, max_batches=1, log=lambda line: None)
    )  # fmt: skip
    stem = draw(figure, ctx, str(tmp_path / "out"), "python -m experiments.analyze")
    rows = {r["method"]: r for r in read_csv(stem + ".csv")}
    assert list(rows) == [m for m, _ in cost.METHODS]
    assert list(read_csv(stem + ".csv")[0]) == [
        "method", "epoch_s", "adv_epoch_s", "epochs", "adv_epochs", "total_s",
        "ratio_to_infonce", "batches", "full_batches", "timed_epochs", "load_1m", "device",
        "note",
    ]  # fmt: skip

    base = float(rows["InfoNCE"]["epoch_s"])
    for method in ("InfoNCE", "BPR", "AdvInfoNCE"):
        row = rows[method]
        assert (row["batches"], row["full_batches"]) == ("1", "3")
        assert float(row["ratio_to_infonce"]) == pytest.approx(float(row["epoch_s"]) / base)
        assert row["device"]
    assert float(rows["InfoNCE"]["ratio_to_infonce"]) == 1.0
    assert float(rows["InfoNCE"]["epochs"]) == 15.0
    assert float(rows["InfoNCE"]["total_s"]) == pytest.approx(base * 15.0)
    assert rows["InfoNCE"]["adv_epoch_s"] == rows["InfoNCE"]["adv_epochs"] == ""
    # BPR has no published run: no epochs, no total.
    assert (rows["BPR"]["epochs"], rows["BPR"]["total_s"]) == ("n/a", "n/a")
    assert "no published run" in rows["BPR"]["note"]
    # AdvInfoNCE's one counted run trained 12 epochs; adversarial passes before the
    # 0-based epochs e > 0 with (e + 3) % 5 == 0 below e_adv = 3: e = 2, 7.
    adv = rows["AdvInfoNCE"]
    assert (float(adv["epochs"]), float(adv["adv_epochs"])) == (12.0, 2.0)
    adv_s = float(adv["adv_epoch_s"])
    assert adv_s > 0
    assert float(adv["total_s"]) == pytest.approx(12 * float(adv["epoch_s"]) + 2 * adv_s)
    assert "mean of 1 published runs" in adv["note"]
    for method in ("CCL", "BC loss", "Adap-tau", "SGL", "NCL", "XSimGCL"):
        assert rows[method]["epoch_s"] == "" and rows[method]["device"] == ""
        assert rows[method]["note"].startswith("skipped: no flagfile")

    text = open(stem + ".md").read()
    assert "| InfoNCE |" in text and "1 of 3 batches timed per epoch" in text
    assert "- SGL: skipped: no flagfile" in text
    assert png_size(stem + ".png") == expected_size(6.4, 0.4 * 9 + 1.4)


def test_the_baseline_needs_its_flagfile(tmp_path):
    from advjax.errors import ConfigError

    ctx = context(tmp_path)
    with pytest.raises(ConfigError, match="tiny_lightgcn_infonce.flags: no such flagfile"):
        cost.cost_rows(ctx, results=str(tmp_path), log=lambda line: None)
