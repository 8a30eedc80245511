"""--log_test: test curves at every validation, and nothing chosen by them."""

import json

import pytest

from advjax.data import load_dataset
from advjax.train import TrainConfig, train_and_evaluate


@pytest.fixture(scope="module")
def coat():
    return load_dataset("coat")


def _records(workdir):
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_test_curves_are_logged_and_change_no_result(coat, tmp_path):
    settings = dict(lr=1e-2, max_epochs=20, t_adv=5, e_adv=2, eval_every=5, patience=2)
    plain = train_and_evaluate(
        TrainConfig(**settings), str(tmp_path / "plain"), data=coat, log=lambda s: None
    )
    lines = []
    logged = train_and_evaluate(
        TrainConfig(**settings, log_test=True), str(tmp_path / "logged"), data=coat,
        log=lines.append,
    )  # fmt: skip
    # The report is the same with or without the curves (selection reads valid only).
    for key in ("best_epoch", "valid", "test_id", "test_ood"):
        assert logged[key] == plain[key], key
    assert logged["flags"]["log_test"] and not plain["flags"]["log_test"]

    records = [r for r in _records(tmp_path / "logged") if "final" not in r]
    validated = [r for r in records if "valid/recall@20" in r]
    assert validated and all(
        "test_ood/recall@20" in r and "test_id/ndcg@20" in r for r in validated
    )
    assert not any("test_ood/recall@20" in r for r in records if r not in validated)
    at_best = next(r for r in validated if r["epoch"] == logged["best_epoch"])
    assert at_best["test_ood/recall@20"] == logged["test_ood"]["recall@20"]
    assert not any(
        "test_ood/recall@20" in r for r in _records(tmp_path / "plain") if "final" not in r
    )
    assert any(" | test_ood recall@20 " in line for line in lines)


def test_log_test_may_change_when_a_run_resumes(coat, tmp_path):
    cfg = TrainConfig(max_epochs=10, eval_every=5)
    train_and_evaluate(cfg, str(tmp_path), data=coat, log=lambda s: None)
    again = TrainConfig(max_epochs=15, eval_every=5, log_test=True)
    results = train_and_evaluate(again, str(tmp_path), data=coat, log=lambda s: None)
    records = [r for r in _records(tmp_path) if "final" not in r]
    assert "test_ood/recall@20" in records[-1] and "test_ood/recall@20" not in records[4]
    assert results["flags"]["log_test"]
