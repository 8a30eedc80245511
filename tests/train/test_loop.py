import json

import jax
import numpy as np
import pytest

from advjax.data import load_dataset
from advjax.evaluation import build_evaluators
from advjax.models import init_embeddings, propagation
from advjax.models.trained import TrainedModel
from advjax.train import TrainConfig, train_and_evaluate


@pytest.fixture(scope="module")
def coat():
    return load_dataset("coat")


def _random_recall(data, n_seeds=5):
    """Expected test Recall@20 of random embeddings (mean over seeds)."""
    evaluator = build_evaluators(data)["test_ood"]
    values = []
    for seed in range(n_seeds):
        params = init_embeddings(jax.random.key(100 + seed), data.n_users, data.n_items)
        values.append(evaluator.evaluate(TrainedModel(params["user"], params["item"]))["recall@20"])
    return float(np.mean(values))


def test_short_coat_run_beats_random_ranking(coat, tmp_path):
    cfg = TrainConfig(lr=1e-2, max_epochs=40, t_adv=5, e_adv=4, eval_every=5, patience=4)
    lines = []
    results = train_and_evaluate(cfg, str(tmp_path), data=coat, log=lines.append)
    random = _random_recall(coat)
    assert results["test_ood"]["recall@20"] > 2.5 * random, (results["test_ood"], random)
    assert results["test_ood"]["ndcg@20"] > 0.1
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["best_epoch"] == results["best_epoch"] and saved["best_epoch"] % 5 == 0
    assert set(saved) >= {"best_epoch", "valid", "test_id", "test_ood", "flags", "timing"}
    assert set(saved["test_ood"]) == {"recall@20", "ndcg@20", "hit_ratio@20", "precision@20"}
    assert saved["flags"]["lr"] == 1e-2
    assert saved["platform"]["propagation"] is None  # MF propagates nothing
    packages = saved["platform"]["packages"]
    assert packages["jax"] == jax.__version__ and packages["numpy"] == np.__version__
    assert set(packages) == {"python", "jax", "jaxlib", "numpy", "scipy", "optax", "flax"}
    assert saved["data"] == {
        "name": "coat", "users": coat.n_users, "items": coat.n_items,
        "train_pairs": coat.train.nnz,
    }  # fmt: skip
    assert sum("adv #" in line for line in lines) == 4  # epochs 7, 12, 17, 22 (1-based 8..)
    assert any(line.startswith("epoch    1 |") and "kl" in line for line in lines)


def test_lightgcn_infonce_run(coat):
    cfg = TrainConfig(n_layers=2, loss="infonce", lr=1e-2, max_epochs=10, eval_every=5)
    results = train_and_evaluate(cfg, None, data=coat, log=lambda line: None)
    assert results["test_ood"]["recall@20"] > 1.5 * _random_recall(coat)
    # "auto" is recorded as what it resolved to, so a results table can say what ran.
    assert results["platform"]["propagation"] == propagation.resolve_method("auto")


def test_batch_larger_than_train_set_is_a_clear_error(coat):
    from advjax.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_size 4096 exceeds the 1363 training pairs"):
        train_and_evaluate(TrainConfig(batch_size=4096), None, data=coat, log=lambda s: None)


# One short Coat run per rival loss and hardness strategy (issue 5): each must learn.
# BPR takes one negative; BC loss spends its first epochs on the popularity branch.
RIVALS = {
    "bpr": dict(loss="bpr", n_neg=1, tau=0.2),
    "ccl": dict(loss="ccl", ccl_margin=0.4, ccl_neg_weight=1.0),
    "bc_loss": dict(loss="bc_loss", tau=0.2, bc_tau_bias=0.2, bc_pop_epochs=5, max_epochs=40),
    "bc_sigmoid": dict(loss="bc_loss", bc_margin="sigmoid", tau=0.5, max_epochs=40),
    "adap_tau": dict(loss="adap_tau", tau=0.2, adap_tau_warm_up=10),
    "adv_reverse": dict(loss="adv_infonce", hardness_strategy="reverse", t_adv=5, e_adv=4),
    "adv_random": dict(loss="adv_infonce", hardness_strategy="random"),
    "adv_mlp": dict(loss="adv_infonce", hardness="mlp", t_adv=5, e_adv=4),
}


@pytest.mark.parametrize("name", list(RIVALS))
def test_each_loss_trains_on_coat_and_beats_random(coat, name):
    settings = {"lr": 1e-2, "max_epochs": 30, "eval_every": 5, "patience": 3, **RIVALS[name]}
    results = train_and_evaluate(TrainConfig(**settings), None, data=coat, log=lambda s: None)
    random = _random_recall(coat)
    assert results["test_ood"]["recall@20"] > 2.0 * random, (name, results["test_ood"], random)
