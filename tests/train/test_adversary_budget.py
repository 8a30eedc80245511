"""--kl_radius and --adv_stop=valid on real Coat runs, resume included."""

import json

import pytest

from advjax.data import load_dataset
from advjax.train import TrainConfig, train_and_evaluate, train_events
from advjax.train import events as ev


@pytest.fixture(scope="module")
def coat():
    return load_dataset("coat")


_SETTINGS = dict(lr=1e-2, lr_adv=0.05, t_adv=5, e_adv=20, eval_every=5, max_epochs=60)


def test_kl_radius_stops_the_passes_once_the_divergence_reaches_it(coat):
    free = [e for e in train_events(TrainConfig(**_SETTINGS, patience=20), data=coat)]
    passes = [e for e in free if isinstance(e, ev.AdversarialPass)]
    kls = [e.values["hardness/kl_u_p"] for e in free if isinstance(e, ev.Diagnostics)]
    radius = kls[len(kls) // 2]  # reached part way through the free run
    bounded = list(train_events(TrainConfig(**_SETTINGS, patience=20, kl_radius=radius), data=coat))
    bounded_passes = [e for e in bounded if isinstance(e, ev.AdversarialPass)]
    assert 0 < len(bounded_passes) < len(passes)
    # The passes that ran are those of the free run up to the radius (same stream).
    assert [e.stats for e in bounded_passes] == [e.stats for e in passes[: len(bounded_passes)]]
    after = [e.values["hardness/kl_u_p"] for e in bounded if isinstance(e, ev.Diagnostics)]
    assert max(after) < 2 * radius  # the divergence stops growing after the last pass


def test_adv_stop_valid_ends_the_passes_at_the_first_validation_without_a_new_best(coat):
    events = list(train_events(TrainConfig(**_SETTINGS, patience=20, adv_stop="valid"), data=coat))
    first_stale = next(e.epoch for e in events if isinstance(e, ev.Validation) and not e.improved)
    passes = [e.epoch for e in events if isinstance(e, ev.AdversarialPass)]
    assert passes and max(passes) <= first_stale
    assert any(isinstance(e, ev.Note) and "adversary stopped" in e.text for e in events)


def test_a_stopped_adversary_stays_stopped_after_a_resume(coat, tmp_path):
    cfg = TrainConfig(**_SETTINGS, patience=20, adv_stop="valid")
    whole = train_and_evaluate(cfg, str(tmp_path / "whole"), data=coat, log=lambda s: None)
    events = list(train_events(cfg, data=coat))
    first_stale = next(e.epoch for e in events if isinstance(e, ev.Validation) and not e.improved)
    # Cut after the adversary stopped, before the end, then resume with the same command.
    cut = TrainConfig(**{**_SETTINGS, "max_epochs": first_stale + 5}, patience=20, adv_stop="valid")
    train_and_evaluate(cut, str(tmp_path / "cut"), data=coat, log=lambda s: None)
    resumed = train_and_evaluate(cfg, str(tmp_path / "cut"), data=coat, log=lambda s: None)
    for key in ("best_epoch", "valid", "test_ood"):
        assert resumed[key] == whole[key], key
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    adv_epochs = [json.loads(x)["epoch"] for x in lines if "adv_kl" in json.loads(x)]
    assert max(adv_epochs) <= first_stale
