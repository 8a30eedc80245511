"""experiments.fidelity's readers and summary (the training is the CLI's)."""

import json

import numpy as np
import pytest

from experiments import fidelity
from tests.helpers import SHARED_DATA

REFERENCE_CSV = SHARED_DATA.parent / "reference" / "coat_lgn_advinfonce.seed101.csv"


def test_reference_curves_and_per_pass_divergence():
    if not REFERENCE_CSV.exists():
        pytest.skip(f"{REFERENCE_CSV} not present")
    reference = fidelity.read_reference(str(REFERENCE_CSV))
    assert reference["epoch"][:2] == [5, 10]  # 0-based 4, 9 made 1-based
    kl = fidelity.reference_pass_kl(reference)
    # The value logged with pass 1 is the initial divergence, then one per update.
    assert kl[0] == pytest.approx(0.0009956154) and kl[1] == pytest.approx(0.0010376447)
    assert len(kl) == max(reference["adv_passes"]) and all(np.diff(kl) > 0)


def _results(recall, ndcg, best_epoch=100):
    return {"best_epoch": best_epoch, "test_ood": {"recall@20": recall, "ndcg@20": ndcg}}


def test_summary_pairs_seeds_and_averages_divergence_by_pass():
    runs = {}
    for seed, (base, adv) in enumerate([(0.27, 0.25), (0.28, 0.26), (0.275, 0.26)], start=1):
        curves = {"adv_kl": [0.001, 0.002 * seed]}
        runs["infonce", "fresh", seed] = {"results": _results(base, 0.18), "curves": {"adv_kl": []}}
        runs["advinfonce", "fresh", seed] = {
            "results": _results(adv, 0.19 + 0.003 * seed),
            "curves": curves,
        }
    summary = fidelity.summarize(runs)["fresh"]
    assert summary["infonce"]["recall@20"]["mean"] == pytest.approx(0.275)
    paired = summary["advinfonce"]["paired_minus_infonce"]
    assert paired["seeds"] == [1, 2, 3]
    assert paired["recall@20"]["mean_difference"] == pytest.approx((-0.02 - 0.02 - 0.015) / 3)
    assert 0 < paired["recall@20"]["p"] < 0.05
    assert summary["adv_kl_by_pass"][1]["mean"] == pytest.approx(0.004)
    assert summary["adv_kl_by_pass"][1]["runs"] == 3


def test_read_curves_from_a_metrics_file(tmp_path):
    records = [
        {"epoch": 1, "loss": 8.0},
        {"epoch": 3, "loss": 7.9, "adv_loss": 8.1, "adv_kl": 0.001},
        {"epoch": 5, "loss": 7.8, "valid/recall@20": 0.1, "test_ood/recall@20": 0.2,
         "hardness/kl_u_p": 0.002},
        {"epoch": 5, "final": True, "test_ood/recall@20": 0.2},
    ]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    curves = fidelity.read_curves(str(tmp_path))
    assert curves["epoch"] == [5] and curves["test_ood/recall@20"] == [0.2]
    assert curves["adv_kl"] == [0.001] and curves["adv_epoch"] == [3]
    assert curves["loss"] == [8.0, 7.9, 7.8]


def test_reference_runs_of_every_seed_are_found():
    references = fidelity.read_references(["results/reference_runs"])
    assert sorted(references) == [
        *(("advinfonce", seed) for seed in range(1, 9)),
        *(("infonce", seed) for seed in range(1, 6)),
    ]
    assert fidelity.reference_pass_kl(references["infonce", 1]) == []  # no adversary
    kl = fidelity.reference_pass_kl(references["advinfonce", 1])
    # Seed 1 of the reference code: the logged divergence before its first passes.
    assert kl[0] == pytest.approx(0.0009909483) and kl[8] == pytest.approx(0.004068706)
