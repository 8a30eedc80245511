"""Several seeds in one program (advjax/train/multirun.py) against each seed trained alone."""

import dataclasses
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax.data import load_dataset
from advjax.errors import ConfigError
from advjax.train import TrainConfig, train_events
from advjax.train.multirun import (
    check_batchable,
    make_batched_epochs,
    run_slice,
    setup_runs,
    stack,
    train_runs,
    train_runs_events,
)
from advjax.train.setup import setup_run

# Short runs; at the default lr, MF seed 3 stops at epoch 15 while seeds 1 and 2 go on
# to 30-35 (patience 2): the masking of a stopped run is exercised.
_SHORT = dict(max_epochs=40, t_adv=5, e_adv=4, eval_every=5, patience=2)
_SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def coat():
    return load_dataset("coat")


def _comparable(event) -> dict:
    """An event without its wall-clock fields."""
    record = {"type": type(event).__name__, **dataclasses.asdict(event)}
    for name in ("seconds", "samples_per_s", "wall_s", "runs"):
        record.pop(name, None)
    if "results" in record:
        record["results"] = {k: v for k, v in record["results"].items() if k != "timing"}
    return record


def _alone(cfgs, data):
    return [[_comparable(e) for e in train_events(cfg, data=data)] for cfg in cfgs]


def _together(cfgs, data, batching):
    streams = [[] for _ in cfgs]
    for index, event in train_runs_events(cfgs, [None] * len(cfgs), data=data, batching=batching):
        streams[index].append(_comparable(event))
    return streams


@pytest.mark.parametrize(
    "settings",
    [
        dict(loss="infonce"),
        dict(loss="adap_tau"),  # per-run temperatures in the loss state
        dict(loss="bc_loss"),  # its own parameter groups, trained in phases
        dict(loss="adv_infonce", n_layers=2),  # adversarial passes, LightGCN
    ],
    ids=lambda s: "-".join(str(v) for v in s.values()),
)
def test_map_equals_each_seed_alone(coat, settings):
    cfgs = [TrainConfig(**_SHORT, **settings, seed=seed) for seed in _SEEDS]
    alone = _alone(cfgs, coat)
    together = _together(cfgs, coat, "map")
    for seed, a, t in zip(_SEEDS, alone, together, strict=True):
        assert a == t, f"seed {seed}: events differ"
    if settings["loss"] == "infonce":  # the case this test is for: one stops first
        stops = [stream[-1]["epochs"] for stream in alone]
        assert min(stops) < max(stops), stops


def _assert_close_streams(alone, together):
    """Same events in the same order; losses to float32 rounding over a short run, and
    the metrics (ranks) to within a few users' hits."""
    for a, t in zip(alone, together, strict=True):
        assert [e["type"] for e in a] == [e["type"] for e in t]
        for ea, et in zip(a, t, strict=True):
            if ea["type"] in ("EpochTrained", "AdversarialPass"):
                for name, value in ea["stats"].items():
                    np.testing.assert_allclose(et["stats"][name], value, rtol=1e-4, atol=1e-6)
            if ea["type"] in ("Validation", "Report"):
                flat_a = jax.tree_util.tree_leaves(ea["metrics"])
                flat_t = jax.tree_util.tree_leaves(et["metrics"])
                np.testing.assert_allclose(flat_t, flat_a, atol=2e-3)


def test_vmap_agrees_with_each_seed_alone(coat):
    cfgs = [TrainConfig(**_SHORT, loss="adv_infonce", n_layers=2, seed=s) for s in _SEEDS]
    _assert_close_streams(_alone(cfgs, coat), _together(cfgs, coat, "vmap"))


def test_runs_differing_in_learning_rates_equal_each_alone(coat):
    """The learning rates are data in each run's optimiser state, alone or stacked
    (advjax.train.state.adam): under map, runs differing in them are bit-identical."""
    base = dict(_SHORT, max_epochs=20, loss="adv_infonce")  # MF; passes at epochs 3, 8, ...
    cfgs = [TrainConfig(**base), TrainConfig(**base, lr=3e-3, lr_adv=0.05)]
    alone = _alone(cfgs, coat)
    assert alone == _together(cfgs, coat, "map")
    passes = [[e["stats"] for e in run if e["type"] == "AdversarialPass"] for run in alone]
    assert len(passes[0]) >= 2 and passes[0] != passes[1]  # the rates did differ


@pytest.mark.parametrize(
    "base, variants",
    [
        (dict(loss="infonce"), [dict(tau=0.5), dict(tau=0.9, lr=3e-3), dict(l2_reg=1e-3)]),
        (dict(loss="ccl"), [dict(ccl_margin=0.2), dict(ccl_neg_weight=10.0)]),
        (dict(loss="bc_loss"), [dict(bc_tau_bias=0.5), dict(bc_tau_bias=0.2, patience=3)]),
        (dict(loss="adap_tau"), [dict(adap_tau_beta=0.5), dict(tau=0.5)]),
        (
            dict(loss="adv_infonce", n_layers=2),
            [dict(lr_adv=0.05, e_adv=2), dict(kl_radius=0.002), dict(adv_stop="valid")],
        ),
        (
            dict(loss="infonce", n_layers=2, augment="xsimgcl"),
            [dict(cl_weight=0.5), dict(cl_tau=0.3, xsimgcl_eps=0.1)],
        ),
        (dict(loss="infonce", n_layers=2, augment="sgl"), [dict(sgl_drop_rate=0.3)]),
        (
            dict(loss="infonce", n_layers=2, augment="ncl", ncl_start_epoch=2, ncl_clusters=20),
            [dict(ncl_proto_weight=0.1, ncl_alpha=0.5)],
        ),
    ],
    ids=lambda v: v.get("augment", v["loss"]) if isinstance(v, dict) else "",
)
def test_runs_differing_in_settings_agree_with_each_alone(coat, base, variants):
    """A grid's points in one program: the traced settings are inputs there and
    constants alone, so float32 rounding may differ (batch.py); the host's per run."""
    cfgs = [TrainConfig(**{**_SHORT, **base, **v}) for v in [{}, *variants]]
    _assert_close_streams(_alone(cfgs, coat), _together(cfgs, coat, "map"))


def test_one_trace_per_epoch_function(coat):
    cfgs = [TrainConfig(**_SHORT, loss="adv_infonce", n_layers=2, seed=s) for s in _SEEDS]
    chex.clear_trace_counter()  # the epochs' code is shared by every test's run
    runs = setup_runs(cfgs, coat, trace_hook=chex.assert_max_traces(n=1))
    epochs = make_batched_epochs(runs[0].fns, "map")
    states, data = stack([run.state for run in runs]), runs[0].train_data
    for mask in ([True, True, True], [True, False, True], [False, False, True]):
        states, stats = epochs.adv_epoch(states, data, jnp.asarray(mask), {})
        states, stats = epochs.cf_epoch(states, data, jnp.asarray(mask), {})
        assert stats["loss"].shape == (3,)
        assert [bool(v != 0) for v in stats["loss"]] == mask
    np.testing.assert_array_equal(states.epoch, [2, 1, 3])
    np.testing.assert_array_equal(states.adv_epochs, [2, 1, 3])


def test_masked_run_keeps_its_state(coat):
    cfgs = [TrainConfig(**_SHORT, seed=s) for s in (1, 2)]
    runs = setup_runs(cfgs, coat)
    epochs = make_batched_epochs(runs[0].fns, "map")
    before = jax.device_get(run_slice(stack([r.state for r in runs]), 1).cf_params)
    states, _ = epochs.cf_epoch(stack([r.state for r in runs]), runs[0].train_data,
                                jnp.asarray([True, False]), {})  # fmt: skip
    chex.assert_trees_all_equal(jax.device_get(run_slice(states, 1).cf_params), before)
    assert int(states.epoch[0]) == 1 and int(states.epoch[1]) == 0


def test_setup_runs_gives_each_seed_its_own_start(coat):
    cfgs = [TrainConfig(seed=s) for s in (4, 9)]
    for run, cfg in zip(setup_runs(cfgs, coat), cfgs, strict=True):
        alone = setup_run(cfg, coat)
        chex.assert_trees_all_equal(run.state.cf_params, alone.state.cf_params)
        chex.assert_trees_all_equal(run.sample, alone.sample)
        assert run.cfg == cfg


def test_what_runs_in_one_program_may_differ_in():
    assert check_batchable([TrainConfig(seed=1), TrainConfig(seed=2, patience=3)]) == ()
    traced = check_batchable([TrainConfig(), TrainConfig(seed=2, tau=0.5, lr=0.01)])
    assert traced == ("tau",)  # the learning rate is in each run's optimiser state
    assert check_batchable([TrainConfig(), TrainConfig(lr=0.01, lr_adv=0.1)]) == ()
    with pytest.raises(ConfigError, match="cannot differ in backbone, k_neg, n_layers"):
        check_batchable([TrainConfig(), TrainConfig(n_layers=2, k_neg=8, tau=0.5)])


def test_train_runs_writes_each_workdir(coat, tmp_path):
    cfgs = [TrainConfig(**_SHORT, loss="infonce", seed=s) for s in (1, 3)]
    workdirs = [str(tmp_path / f"seed{s}") for s in (1, 3)]
    lines = []
    results = train_runs(cfgs, workdirs, data=coat, log=lines.append)
    for workdir, result, cfg in zip(workdirs, results, cfgs, strict=True):
        saved = json.loads(open(os.path.join(workdir, "results.json")).read())
        assert saved["best_epoch"] == result["best_epoch"]
        assert saved["flags"]["seed"] == cfg.seed
        assert saved["timing"]["runs_in_program"] == 2
        epochs = [
            json.loads(line)["epoch"] for line in open(os.path.join(workdir, "metrics.jsonl"))
        ]
        assert epochs[-1] == saved["timing"]["epochs"]
    assert results[1]["timing"]["epochs"] == 15 < results[0]["timing"]["epochs"]
    assert any(line.startswith("seed 3: early stop") for line in lines), lines
    assert all(line.startswith(("seed 1: ", "seed 3: ", "wrote ")) for line in lines), lines


def test_resumed_batch_continues_each_run(coat, tmp_path):
    """Stopped at epoch 20 (max_epochs may change on resume), continued to 40: each
    run's report equals the uninterrupted seed's."""
    cfgs = [TrainConfig(**_SHORT, loss="infonce", seed=s) for s in _SEEDS]
    workdirs = [str(tmp_path / f"seed{s}") for s in _SEEDS]
    quiet = [[] for _ in cfgs]
    train_runs([dataclasses.replace(c, max_epochs=20) for c in cfgs], workdirs, data=coat,
               sinks=quiet)  # fmt: skip
    resumed = train_runs(cfgs, workdirs, data=coat, sinks=quiet)
    for cfg, result in zip(cfgs, resumed, strict=True):
        alone = list(train_events(cfg, data=coat))[-1].results
        assert result["best_epoch"] == alone["best_epoch"]
        for split in ("valid", "test_ood"):
            assert result[split] == alone[split]


def test_events_of_a_run_keep_their_order(coat):
    cfgs = [TrainConfig(**_SHORT, loss="infonce", seed=s) for s in _SEEDS]
    streams = _together(cfgs, coat, "map")
    for stream in streams:
        kinds = [e["type"] for e in stream]
        assert kinds[0] == "RunStarted" and kinds[-1] == "Report"
        assert kinds.count("Report") == 1
        trained = [e["epoch"] for e in stream if e["type"] == "EpochTrained"]
        assert trained == list(range(1, len(trained) + 1))
