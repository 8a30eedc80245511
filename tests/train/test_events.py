"""The loop's events and the sinks that turn them into lines."""

import pytest

from advjax.data import load_dataset
from advjax.train import TrainConfig, train_events
from advjax.train import events as ev
from advjax.train.sinks import ProgressLines


@pytest.fixture(scope="module")
def coat_events():
    cfg = TrainConfig(lr=1e-2, max_epochs=12, t_adv=5, e_adv=2, eval_every=5, patience=1)
    return list(train_events(cfg, None, data=load_dataset("coat")))


def test_events_come_in_the_documented_order(coat_events):
    kinds = [type(e).__name__ for e in coat_events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "Report"
    epochs = [e.epoch for e in coat_events if isinstance(e, ev.EpochEnd)]
    assert epochs == list(range(1, len(epochs) + 1))
    # Within an epoch: the adversarial pass, the CF epoch, the validation, its end.
    by_epoch: dict[int, list[str]] = {}
    for event in coat_events:
        if hasattr(event, "epoch") and not isinstance(event, ev.Report | ev.EarlyStopped):
            by_epoch.setdefault(event.epoch, []).append(type(event).__name__)
    assert by_epoch[3] == ["AdversarialPass", "EpochTrained", "EpochEnd"]
    assert by_epoch[5] == ["EpochTrained", "Validation", "Diagnostics", "EpochEnd"]
    assert [e.epoch for e in coat_events if isinstance(e, ev.AdversarialPass)] == [3, 8]
    assert [e.number for e in coat_events if isinstance(e, ev.AdversarialPass)] == [1, 2]


def test_report_matches_the_validations(coat_events):
    validations = [e for e in coat_events if isinstance(e, ev.Validation)]
    report = coat_events[-1]
    best = max(validations, key=lambda e: e.metrics["recall@20"])
    assert report.best_epoch == best.epoch and best.improved
    assert report.metrics["valid"] == best.metrics
    assert report.results["best_epoch"] == report.best_epoch
    assert report.results["valid"] == report.metrics["valid"]
    stopped = [e for e in coat_events if isinstance(e, ev.EarlyStopped)]
    if stopped:  # patience 1: the first validation that does not improve ends the run
        assert stopped[0].epoch == validations[-1].epoch and not validations[-1].improved


def test_stop_epoch_is_announced_with_every_epoch_end(coat_events):
    ends = [e for e in coat_events if isinstance(e, ev.EpochEnd)]
    assert ends[0].stop_epoch == 5  # patience 1: the first validation decides
    assert all(e.stop_epoch is not None and e.max_epochs == 12 for e in ends)


def test_progress_lines_for_a_sweep_keep_validations_only(coat_events):
    lines, quiet = [], []
    full = ProgressLines(lines.append)
    sweep = ProgressLines(quiet.append, prefix="cell seed 1: ", every_epoch=False)
    for event in coat_events:
        full(event)
        sweep(event)
    epoch_lines = [x for x in lines if x.startswith("epoch ")]
    assert len(epoch_lines) == sum(isinstance(e, ev.EpochEnd) for e in coat_events)
    assert all(x.startswith("cell seed 1: ") for x in quiet)
    shown = [x.removeprefix("cell seed 1: ") for x in quiet]
    validated = [x for x in epoch_lines if " | valid " in x]
    assert [x for x in shown if x.startswith("epoch ")] == validated
    assert " | adv #1 loss " in epoch_lines[2]
    assert lines[-1].startswith("best epoch ") and "test_ood" in lines[-1]
