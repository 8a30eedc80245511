"""The backbone registry: what each spec declares, configurations saved before
--backbone, and a backbone added at test time that trains with nothing else changed."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax.data import load_dataset
from advjax.errors import ConfigError
from advjax.initializers import init_embeddings
from advjax.models import registry
from advjax.models.backbone import Backbone
from advjax.train import Batch, TrainConfig, cf_step, setup_run, train_and_evaluate
from advjax.train.config import config_dict, config_differences
from experiments.run import default_workdir


def test_every_registered_backbone_builds_a_valid_config_of_its_own():
    own = {"mf": {}, "lightgcn": {"n_layers": 2}, "ultragcn": {}, "vgae": {"n_layers": 2}}
    assert set(registry.BACKBONES) == set(own)
    for name, spec in registry.BACKBONES.items():
        cfg = TrainConfig(backbone=name, **own[name])
        assert cfg.backbone_spec is spec and config_dict(cfg)["backbone"] == name
        for setting in spec.settings:
            assert setting.help and setting.check(setting.default) is None


def test_without_backbone_n_layers_chooses_as_it_always_did():
    assert TrainConfig().backbone_spec.name == "mf"
    assert TrainConfig(n_layers=2).backbone_spec.name == "lightgcn"
    # The same run, named or chosen by --n_layers, is one configuration.
    assert TrainConfig(n_layers=2) == TrainConfig(backbone="lightgcn", n_layers=2)
    assert hash(TrainConfig()) == hash(TrainConfig(backbone="mf"))
    assert TrainConfig(n_layers=2) != TrainConfig(n_layers=3)
    # A grid over --n_layers may cross from MF to LightGCN (experiments/search.py).
    assert dataclasses.replace(TrainConfig(), n_layers=1).backbone_spec.name == "lightgcn"


def test_settings_of_another_backbone_and_bad_depths_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"--n_layers=2 is a setting of --backbone=lightgcn; "
                       r"this run's backbone is mf"):  # fmt: skip
        TrainConfig(backbone="mf", n_layers=2)
    with pytest.raises(ConfigError, match=r"--backbone=lightgcn needs --n_layers >= 1, got 0"):
        TrainConfig(backbone="lightgcn")
    with pytest.raises(ConfigError, match=r"unknown backbone 'gcn'; choose one of"):
        TrainConfig(backbone="gcn")


def test_a_record_saved_before_backbone_reads_as_the_backbone_its_n_layers_chose():
    for n_layers, name in [(0, "mf"), (2, "lightgcn")]:
        current = TrainConfig(backbone=name, n_layers=n_layers)
        saved = {k: v for k, v in config_dict(current).items() if k != "backbone"}
        assert config_differences(saved, current) == {}
    lightgcn = TrainConfig(backbone="lightgcn", n_layers=2)
    old_three = {**config_dict(lightgcn), "n_layers": 3}
    del old_three["backbone"]
    assert config_differences(old_three, lightgcn) == {"n_layers": (3, 2)}
    old_mf = {k: v for k, v in config_dict(TrainConfig()).items() if k != "backbone"}
    assert config_differences(old_mf, lightgcn) == {
        "backbone": ("mf", "lightgcn"),
        "n_layers": (0, 2),
    }


# A toy backbone: MF whose representations pass through one shared learned map, with
# an extra term that holds the map near the identity.
_EXTRA_WEIGHT = 1e-2


def _toy_init(cfg, key, n_users, n_items):
    tables = init_embeddings(key, n_users, n_items, cfg.emb_dim)
    return {**tables, "proj": jnp.eye(cfg.emb_dim, dtype=jnp.float32)}


def _toy_represent(cfg, params, graph, method):
    return params["user"] @ params["proj"], params["item"] @ params["proj"]


def _toy_extra(cfg, params, users, pos, negs, data):
    return _EXTRA_WEIGHT * jnp.sum((params["proj"] - jnp.eye(params["proj"].shape[0])) ** 2)


_TOY = Backbone(
    name="toy_proj",
    init_params=_toy_init,
    represent=_toy_represent,
    extra_loss=_toy_extra,
    label=lambda cfg: "ToyProj",
    slug=lambda cfg: "toyproj",
)


def test_a_new_backbone_needs_only_a_spec_and_a_registry_entry(monkeypatch, tmp_path):
    """Registered at test time, trained by the normal entry point: nothing under
    advjax/train/, advjax/evaluation/ or experiments/ knows it."""
    monkeypatch.setitem(registry.BACKBONES, "toy_proj", _TOY)
    cfg = TrainConfig(backbone="toy_proj", loss="infonce", lr=1e-2, max_epochs=30, eval_every=5)
    assert default_workdir(cfg) == "runs/coat-toyproj-infonce"
    lines = []
    workdir = str(tmp_path / "toy")
    results = train_and_evaluate(cfg, workdir, data=load_dataset("coat"), log=lines.append)
    # Random embeddings give about 0.07 test Recall@20 on Coat (tests/train/test_loop.py).
    assert results["test_ood"]["recall@20"] > 0.14
    assert results["flags"]["backbone"] == "toy_proj"
    assert results["platform"]["propagation"] is None  # it reads no graph
    assert any("ToyProj + infonce" in line for line in lines)
    saved = json.loads((tmp_path / "toy" / "results.json").read_text())
    assert saved["best_epoch"] == results["best_epoch"]
    # Its best checkpoint holds the map, and evaluates again to the same figures.
    again = train_and_evaluate(cfg, workdir, data=load_dataset("coat"), test_only=True)
    assert again["test_ood"] == results["test_ood"]


def test_a_backbones_extra_loss_enters_the_step_objective(monkeypatch):
    monkeypatch.setitem(registry.BACKBONES, "toy_proj", _TOY)
    plain = dataclasses.replace(_TOY, name="toy_plain", extra_loss=None)
    monkeypatch.setitem(registry.BACKBONES, "toy_plain", plain)
    batch = Batch(
        users=jnp.array([0, 1, 2, 3]),
        pos=jnp.array([1, 2, 3, 5]),
        negs=jnp.array([[2, 3, 4], [0, 4, 5], [0, 1, 5], [0, 1, 2]]),
        key=jax.random.key(0),
    )
    data = load_dataset("coat")
    losses, grads = {}, {}
    for name in ("toy_proj", "toy_plain"):
        cfg = TrainConfig(backbone=name, loss="infonce", n_neg=3, batch_size=4, emb_dim=8)
        run = setup_run(cfg, data)
        # Move the map off the identity so the extra term and its gradient are not 0.
        proj = run.state.cf_params["proj"] + 0.1
        state = run.state.replace(cf_params={**run.state.cf_params, "proj": proj})
        new, stats = cf_step(cfg, state, run.train_data, batch)
        losses[name] = float(stats["loss"])
        grads[name] = np.asarray(new.cf_params["proj"] - proj)
    expected = _EXTRA_WEIGHT * 0.1**2 * 8 * 8
    assert losses["toy_proj"] - losses["toy_plain"] == pytest.approx(expected, rel=1e-4)
    assert not np.allclose(grads["toy_proj"], grads["toy_plain"])
