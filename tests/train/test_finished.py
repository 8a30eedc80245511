"""advjax.train.finished on a tiny trained AdvInfoNCE run: the restored model is the
best validation's (its metrics are results.json's), the adversary the final one (its
hardness logits are <a_u, b_j> of the restored tables and give the last logged KL),
cosines and ranks agree with a NumPy argsort, and missing runs are named."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

from advjax.analysis import adversarial_epochs
from advjax.errors import ConfigError, WorkdirError
from advjax.logs import read_metrics
from advjax.train.finished import (
    FinishedRun,
    item_cosines,
    item_ranks,
    load_finished_run,
    sample_hardness_logits,
)
from experiments.figures.strategies import strategy_cells
from tests.figures.trained import N_NEG, train_tiny_runs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    ctx = train_tiny_runs(tmp_path_factory.mktemp("inspect"), seeds=(1,), infonce=False)
    return ctx.workdir(strategy_cells(ctx)[3], 1)


@pytest.fixture(scope="module")
def finished(workdir):
    return load_finished_run(workdir)


def _results(workdir: str) -> dict:
    with open(os.path.join(workdir, "results.json")) as f:
        return json.load(f)


def test_best_cf_model_and_final_adversary(workdir, finished):
    results = _results(workdir)
    assert finished.best_epoch == results["best_epoch"]
    assert finished.last_epoch == 4  # --max_epochs=4, validated every epoch
    metrics = finished.run.evaluate(finished.state.cf_params, ["valid", "test_ood"])
    for split in ("valid", "test_ood"):
        for name, value in metrics[split].items():
            assert value == pytest.approx(results[split][name], abs=1e-6), (split, name)
    records = read_metrics(workdir)
    assert int(finished.state.adv_epochs) == len(adversarial_epochs(records)) == 2

    logits = sample_hardness_logits(finished)
    sample = finished.run.sample
    tables = {k: np.asarray(v, np.float64) for k, v in finished.state.adv_params.items()}
    users, negs = np.asarray(sample.users), np.asarray(sample.negs)
    assert logits.shape == negs.shape == (len(users), N_NEG)
    by_hand = np.einsum("sd,snd->sn", tables["user"][users], tables["item"][negs])
    np.testing.assert_allclose(logits, by_hand, atol=1e-5)
    # The "embed" adversary reads no CF parameter: the last validation logged its KL.
    delta = np.log(N_NEG) + by_hand - np.log(np.exp(by_hand).sum(axis=1, keepdims=True))
    last = [r for r in records if "hardness/kl_u_p" in r][-1]
    assert last["epoch"] == finished.last_epoch
    assert -delta.mean() == pytest.approx(last["hardness/kl_u_p"], rel=1e-4)


def test_cosines_and_ranks_by_argsort(finished):
    model = finished.run.model(finished.state.cf_params)
    user_emb, item_emb = (np.asarray(x, np.float64) for x in (model.users, model.items))
    user_hat = user_emb / np.linalg.norm(user_emb, axis=1, keepdims=True)
    item_hat = item_emb / np.linalg.norm(item_emb, axis=1, keepdims=True)
    train = finished.run.data.train
    users = np.array([0, 7, 7])
    items = np.array([[1, 2, 3, 39], [0, 5, 10, 20], [30, 31, 32, 33]])
    np.testing.assert_allclose(item_cosines(finished, users, items),
                               np.take_along_axis(user_hat[users] @ item_hat.T, items, 1),
                               atol=1e-12)  # fmt: skip
    ranks = item_ranks(finished, users, items)
    for r, user in enumerate(users):
        trained = set(train.items[train.indptr[user] : train.indptr[user + 1]].tolist())
        scores = item_hat @ user_hat[user]
        for n, item in enumerate(items[r]):
            # Ranked among the untrained items (and itself, should it be a trained one).
            pool = np.array([i for i in range(len(scores)) if i not in trained or i == item])
            order = pool[np.argsort(-scores[pool], kind="stable")]
            assert ranks[r, n] == 1 + np.flatnonzero(order == item)[0], (user, item)
    assert ranks.min() >= 1 and ranks.max() <= item_hat.shape[0]


def test_missing_runs_are_named(workdir, finished, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WorkdirError, match=f"{empty}: no run here"):
        load_finished_run(str(empty))
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(os.path.join(workdir, "config.json"), unfinished)
    with pytest.raises(WorkdirError, match=f"{unfinished}: no finished run"):
        load_finished_run(str(unfinished))
    shutil.copy(os.path.join(workdir, "results.json"), unfinished)
    with pytest.raises(WorkdirError, match=f"{unfinished}: the run kept no checkpoints"):
        load_finished_run(str(unfinished))

    infonce = dataclasses.replace(finished.run.cfg, loss="infonce")
    run = dataclasses.replace(finished.run, cfg=infonce)
    with pytest.raises(ConfigError, match="has no hardness"):
        sample_hardness_logits(FinishedRun(workdir, run, finished.state, 1, 4))
