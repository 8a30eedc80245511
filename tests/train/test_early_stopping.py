"""EarlyStopping: strict improvement, patience in validations, the predicted stop epoch."""

import json
import math

import pytest

from advjax.train.early_stopping import EarlyStopping


def test_strictly_better_scores_reset_and_ties_count_as_stale():
    stopping = EarlyStopping(patience=2, eval_every=5)
    assert stopping.best_score == -math.inf and not stopping.stopped
    stopping = stopping.update(5, 0.10)
    assert (stopping.best_epoch, stopping.stale) == (5, 0) and stopping.improved_at(5)
    stopping = stopping.update(10, 0.10)  # a tie is no improvement
    assert (stopping.best_epoch, stopping.stale) == (5, 1) and not stopping.improved_at(10)
    stopping = stopping.update(15, 0.20)
    assert (stopping.best_score, stopping.best_epoch, stopping.stale) == (0.20, 15, 0)
    stopping = stopping.update(20, 0.19).update(25, 0.18)
    assert stopping.stopped and stopping.best_epoch == 15


def test_update_returns_a_new_object():
    stopping = EarlyStopping(patience=3, eval_every=1)
    stopping.update(1, 0.5)
    assert stopping.best_epoch == 0  # frozen: the caller keeps the returned one
    with pytest.raises(AttributeError):
        stopping.stale = 2


def test_stop_epoch_of_a_kuairec_run():
    # KuaiRec AdvInfoNCE seed 4: best valid at epoch 35, patience 10, validated every 5.
    stopping = EarlyStopping(patience=10, eval_every=5, best_score=0.3, best_epoch=35)
    assert stopping.stop_epoch(35) == 85
    stale5 = EarlyStopping(patience=10, eval_every=5, best_score=0.3, best_epoch=35, stale=5)
    assert stale5.stop_epoch(60) == 85
    assert stale5.stop_epoch(62) == 85


@pytest.mark.parametrize("eval_every", [1, 3, 5])
@pytest.mark.parametrize("patience", [1, 2, 7])
def test_stop_epoch_is_where_updates_stop_the_run(eval_every, patience):
    """The prediction against the object's own behaviour: feed validations that never
    improve, epoch by epoch, from every reachable (epochs done, stale) point."""
    for stale in range(patience):
        for done in range(0, 4 * eval_every):
            if stale > done // eval_every:
                continue  # more stale validations than validations
            stopping = EarlyStopping(
                patience=patience, eval_every=eval_every, best_score=1.0, stale=stale
            )
            predicted = stopping.stop_epoch(done)
            epoch = done
            while not stopping.stopped:
                epoch += 1
                if epoch % eval_every == 0:
                    stopping = stopping.update(epoch, 0.5)
            assert epoch == predicted, (done, stale, patience, eval_every)


def test_record_round_trips_through_json():
    stopping = EarlyStopping(patience=4, eval_every=2).update(2, 0.25).update(4, 0.1)
    record = json.loads(json.dumps(stopping.record()))
    assert record == {"best_score": 0.25, "best_epoch": 2, "stale": 1}
    assert EarlyStopping(patience=4, eval_every=2).restored(record) == stopping
    fresh = json.loads(json.dumps(EarlyStopping(patience=1, eval_every=1).record()))
    assert EarlyStopping(patience=1, eval_every=1).restored(fresh).best_score == -math.inf
