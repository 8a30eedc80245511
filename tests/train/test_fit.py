"""The fit loop of models not trained by SGD (advjax/train/fit.py): a run's files,
--test_only, seeds, the memory check, and the SGD settings a fitted model refuses."""

import json

import numpy as np
import pytest

from advjax.errors import ConfigError
from advjax.train import TrainConfig, fit, train_and_evaluate
from advjax.train.multirun import train_runs


def test_an_ease_run_writes_its_results_and_best_and_test_only_reads_them(tmp_path):
    cfg = TrainConfig(backbone="ease", ease_l2=30.0)
    lines = []
    results = train_and_evaluate(cfg, str(tmp_path), log=lines.append)
    assert results["best_epoch"] == 1 and results["timing"]["epochs"] == 1
    assert results["flags"]["backbone"] == "ease" and results["flags"]["ease_l2"] == 30.0
    assert results["platform"]["propagation"] is None
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["test_ood"] == results["test_ood"]
    assert any("EASE: the fit holds about" in line for line in lines)
    assert any("EASE, fitted by its solver" in line for line in lines)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert "valid/recall@20" in records[0] and "loss" not in records[0]
    again = train_and_evaluate(cfg, str(tmp_path), test_only=True, log=lines.append)
    assert again == {"best_epoch": 1, **{k: results[k] for k in ("valid", "test_id", "test_ood")}}


def test_seeds_of_a_deterministic_model_are_the_same_run():
    cfgs = [TrainConfig(backbone="ease", ease_l2=30.0, seed=s) for s in (1, 2)]
    first, second = train_runs(cfgs, [None, None], log=lambda line: None)
    for split in ("valid", "test_ood"):
        assert first[split] == second[split]
    assert first["flags"]["seed"] == 1 and second["flags"]["seed"] == 2


def test_a_fit_too_big_for_the_memory_is_refused_before_it_starts(monkeypatch):
    monkeypatch.setattr(fit, "available_bytes", lambda device: 2**20)
    with pytest.raises(ConfigError) as err:
        train_and_evaluate(TrainConfig(backbone="ease"), log=lambda line: None)
    assert "\n" not in str(err.value)
    # 4 bytes x (290 x 295 + 4 x 295 x 295) = 1.65 MiB
    assert str(err.value).startswith(
        "EASE on 290 users x 295 items needs 1.7 MiB of cpu memory at its peak and "
        "1.0 MiB available"
    )


def test_a_fitted_model_refuses_the_settings_of_sgd_training():
    for flag, value in [("tau", 0.5), ("loss", "infonce"), ("augment", "sgl"), ("n_neg", 8),
                        ("lr", 0.1), ("ccl_margin", 0.3)]:  # fmt: skip
        with pytest.raises(ConfigError, match=rf"--backbone=ease is fitted by its own solver, "
                           rf"not trained on a loss: --{flag} would not be read"):  # fmt: skip
            TrainConfig(backbone="ease", **{flag: value})
    with pytest.raises(ConfigError, match=r"--ease_l2=3.0 is a setting of --backbone=ease"):
        TrainConfig(backbone="mf", ease_l2=3.0)
    with pytest.raises(ConfigError, match=r"--mesh trains SGD backbones"):
        train_and_evaluate(TrainConfig(backbone="ease"), mesh="auto", log=lambda line: None)
    assert np.isclose(TrainConfig(backbone="ease").ease_l2, 500.0)


def test_an_ials_fit_validates_every_eval_every_sweeps_and_stops_on_patience(tmp_path):
    cfg = TrainConfig(
        backbone="ials", ials_alpha=1000.0, ials_reg=1000.0, eval_every=2, patience=2,
        max_epochs=40,
    )  # fmt: skip
    results = train_and_evaluate(cfg, str(tmp_path), log=lambda line: None)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    sweeps = [r for r in records if "final" not in r]
    validated = [r["epoch"] for r in sweeps if "valid/recall@20" in r]
    assert validated == list(range(2, len(sweeps) + 1, 2))
    losses = [r["loss"] for r in sweeps]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(losses, losses[1:], strict=False))
    best = max(validated, key=lambda e: sweeps[e - 1]["valid/recall@20"])
    assert results["best_epoch"] == best
    # Stopped by patience: the last two validations did not beat the best, before 40.
    assert len(sweeps) < 40 and validated[-2:] == [best + 2, best + 4]
    again = train_and_evaluate(cfg, str(tmp_path), test_only=True, log=lambda line: None)
    assert again["test_ood"] == results["test_ood"] and again["best_epoch"] == best


def test_ials_seeds_are_different_runs():
    cfgs = [
        TrainConfig(backbone="ials", max_epochs=3, eval_every=3, seed=s, log_test=True)
        for s in (1, 2)
    ]
    lines = []
    first, second = train_runs(cfgs, [None, None], log=lines.append)
    assert first["valid"] != second["valid"]
    # --log_test: the test splits at each validation, here only the last sweep's.
    curves = [line for line in lines if "test_ood recall@20" in line]
    assert (
        len(curves) == 2
        and f"test_ood recall@20 {first['test_ood']['recall@20']:.4f}" in (curves[0])
    )


def test_every_fitted_model_builds_a_valid_config_of_its_own():
    from advjax.models import registry

    assert set(registry.FITTED) == {"ease", "ials"}
    for name, spec in registry.FITTED.items():
        cfg = TrainConfig(backbone=name)
        assert cfg.fitted_spec is spec and cfg.model_spec is spec and cfg.slug == name
        assert spec.scoring == "dot" and spec.label(cfg)
        for setting in spec.settings:
            assert setting.help and setting.check(setting.default) is None
        with pytest.raises(ConfigError, match=f"--backbone={name} is fitted by its own solver"):
            _ = cfg.backbone_spec
