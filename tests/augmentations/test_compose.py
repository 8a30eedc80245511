"""Each augmentation in a short training run: with InfoNCE, one trace per epoch; with
AdvInfoNCE (beyond the paper, which pairs them with InfoNCE), adversarial passes and the
contrastive term in one run."""

import chex
import numpy as np
import pytest

from advjax.data import load_dataset
from advjax.train import TrainConfig, train_and_evaluate, train_events
from advjax.train.events import AdversarialPass, EpochTrained, Report
from advjax.train.setup import setup_run


@pytest.mark.parametrize("augment", ["sgl", "ncl", "xsimgcl"])
def test_adv_infonce_with_each_augmentation(augment):
    cfg = TrainConfig(n_layers=2, loss="adv_infonce", augment=augment, max_epochs=12,
                      t_adv=5, e_adv=2, eval_every=6, ncl_start_epoch=1,
                      ncl_clusters=20)  # fmt: skip
    events = list(train_events(cfg, data=load_dataset("coat")))
    passes = [e for e in events if isinstance(e, AdversarialPass)]
    trained = [e for e in events if isinstance(e, EpochTrained)]
    assert [p.epoch for p in passes] == [3, 8]  # the schedule is the loss's, unchanged
    assert all(np.isfinite(e.stats["loss"]) and e.stats["cl_loss"] > 0 for e in trained)
    assert all("kl" in e.stats for e in trained)  # AdvInfoNCE's own diagnostic
    report = events[-1]
    assert isinstance(report, Report) and report.results["flags"]["augment"] == augment
    assert report.results["test_ood"]["recall@20"] > 0.05


@pytest.mark.parametrize(
    "augment, settings",
    [("sgl", {}), ("xsimgcl", {}), ("ncl", dict(ncl_start_epoch=1, ncl_clusters=20))],
)
def test_short_infonce_run_with_one_trace(augment, settings):
    coat = load_dataset("coat")
    cfg = TrainConfig(n_layers=2, loss="infonce", augment=augment, max_epochs=10,
                      eval_every=5, **settings)  # fmt: skip
    chex.clear_trace_counter()  # the epochs' code is shared by every test's run
    run = setup_run(cfg, coat, trace_hook=chex.assert_max_traces(n=1))
    state = run.state
    for _ in range(3):
        state, stats = run.fns.cf_epoch(state, run.train_data)
        assert np.isfinite(float(stats["loss"])) and float(stats["cl_loss"]) > 0
    assert int(state.epoch) == 3
    if augment == "ncl":
        assert float(stats["proto_loss"]) > 0
    results = train_and_evaluate(cfg, None, data=coat, sinks=[])
    assert results["flags"]["augment"] == augment
    assert results["test_ood"]["recall@20"] > 0.05
