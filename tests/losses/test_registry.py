"""The loss registry: what each spec declares, and a loss added without touching train/."""

import dataclasses

import jax.numpy as jnp
import pytest

from advjax.data import load_dataset
from advjax.errors import ConfigError
from advjax.losses import registry
from advjax.losses.spec import Loss, LossValue
from advjax.train import TrainConfig, train_and_evaluate
from advjax.train.config import config_dict


def test_every_registered_loss_builds_a_valid_default_config():
    backbone = {"ultragcn": "ultragcn"}  # a loss that needs its own backbone (its check)
    for name, spec in registry.LOSSES.items():
        cfg = TrainConfig(loss=name, backbone=backbone.get(name, ""))
        assert cfg.loss_spec is spec and cfg.loss_label.startswith(name)
        for setting in spec.settings:
            assert getattr(cfg, setting.name) == setting.default
            assert setting.check(setting.default) is None
            assert setting.help


def test_settings_are_flat_config_fields_with_their_checks():
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for setting in registry.all_settings():
        assert fields[setting.name].metadata["help"] == setting.help
        assert setting.name in config_dict(TrainConfig())
    with pytest.raises(ConfigError, match=r"ccl_margin must be a cosine in \[-1, 1\], got 2"):
        TrainConfig(ccl_margin=2)
    with pytest.raises(ConfigError, match=r"hardness_strategy must be one of"):
        TrainConfig(hardness_strategy="sideways")
    with pytest.raises(ConfigError, match=r"unknown loss 'nope'"):
        TrainConfig(loss="nope")


def test_labels_name_the_adversary_and_strategy():
    assert TrainConfig(loss="adv_infonce").loss_label == "adv_infonce-embed"
    assert (
        TrainConfig(loss="adv_infonce", hardness="mlp", hardness_strategy="reverse").loss_label
        == "adv_infonce-mlp-reverse"
    )
    assert TrainConfig(loss="adv_infonce", hardness_strategy="random").loss_label == (
        "adv_infonce-random"
    )
    assert TrainConfig(loss="ccl").loss_label == "ccl"
    assert TrainConfig(loss="adv_infonce").trains_adversary
    assert not TrainConfig(loss="adv_infonce", hardness_strategy="none").trains_adversary


def test_a_new_loss_needs_only_a_spec_and_a_registry_entry(monkeypatch):
    """A toy loss with its own per-run state, registered at run time: the trainer runs
    it with no change anywhere under advjax/train/."""

    def value(cfg, inputs):
        # Alignment of the positive minus the mean negative cosine.
        per = -inputs.pos_cos + jnp.mean(inputs.neg_cos, axis=-1)
        return LossValue(per, diagnostics={"gap": -per}, batch_stats={"seen": per * 0 + 1})

    def init_state(cfg, n_users, n_items):
        return {"batches_seen": jnp.zeros((n_users,), jnp.float32)}

    def accumulate(state, users, batch_stats):
        return {"batches_seen": state["batches_seen"].at[users].add(batch_stats["seen"])}

    toy = Loss(name="toy_gap", value=value, init_state=init_state, accumulate=accumulate)
    monkeypatch.setitem(registry.LOSSES, "toy_gap", toy)
    lines = []
    cfg = TrainConfig(loss="toy_gap", lr=1e-2, max_epochs=30, eval_every=5)
    results = train_and_evaluate(cfg, None, data=load_dataset("coat"), log=lines.append)
    # Random embeddings give about 0.07 test Recall@20 on Coat (tests/train/test_loop.py).
    assert results["test_ood"]["recall@20"] > 0.14
    assert any("MF + toy_gap" in line for line in lines)
    assert any(line.startswith("epoch   30") for line in lines)


def test_shared_settings_must_agree_on_their_default():
    from advjax.augmentations.registry import AUGMENTATIONS, augmentation_settings
    from advjax.settings import Setting, merged_settings

    a = Loss("a", value=None, settings=(Setting("w", 1.0, "w"),))
    b = Loss("b", value=None, settings=(Setting("w", 1.0, "w"), Setting("v", 2, "v")))
    assert [s.name for s in merged_settings((a, b), "losses")] == ["w", "v"]
    c = dataclasses.replace(b, settings=(Setting("w", 3.0, "w"),))
    with pytest.raises(ValueError, match="augmentations declare setting 'w' with different"):
        merged_settings((a, c), "augmentations")
    names = [s.name for s in augmentation_settings()]
    assert names.count("cl_weight") == 1 and len(AUGMENTATIONS) == 3
