"""UltraGCN's backbone: the item-item neighbour table and omega against float64 NumPy,
its extra term (L_I and the norm penalty), its scoring per loss, its flags, and a short
training on Coat through the CLI."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from advjax.data import Interactions, SplitData
from advjax.errors import ConfigError
from advjax.models import registry
from advjax.models.trained import trained_model
from advjax.models.ultragcn import extra_loss, item_item_loss, item_neighbors
from advjax.train import Batch, TrainConfig, cf_step, setup_run
from tests.helpers import run_module

# 5 users, 7 items; item 6 has no training user, items 4 and 5 co-occur only with few.
_TRAIN = [[0, 1, 2], [1, 2], [0, 3], [2, 3, 4], [5]]
N_ITEMS = 7


def _interactions() -> Interactions:
    indptr = np.cumsum([0] + [len(items) for items in _TRAIN]).astype(np.int64)
    return Interactions(indptr, np.concatenate(_TRAIN).astype(np.int32), "tiny/train.txt")


def _tiny_split() -> SplitData:
    return SplitData("tiny", len(_TRAIN), N_ITEMS, _interactions(), None, {}, None)


def reference_neighbors(k: int):
    """Dense float64 omega over G = R^T R (diagonal kept) and each row's top k by
    descending omega, ties to the smaller id, padded with the item itself at weight 0."""
    r = np.zeros((len(_TRAIN), N_ITEMS))
    for u, items in enumerate(_TRAIN):
        r[u, items] = 1
    g_mat = r.T @ r
    g = g_mat.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        omega = g_mat * (np.sqrt(g + 1) / g)[:, None] * (1 / np.sqrt(g + 1))[None, :]
    omega[g == 0] = 0
    items = np.tile(np.arange(N_ITEMS)[:, None], (1, k))
    weights = np.zeros((N_ITEMS, k))
    for i in range(N_ITEMS):
        order = np.lexsort((np.arange(N_ITEMS), -omega[i]))
        top = [j for j in order if omega[i, j] > 0][:k]
        items[i, : len(top)] = top
        weights[i, : len(top)] = omega[i, top]
    return items, weights, omega


@pytest.mark.parametrize("k", [1, 3, 9])
def test_neighbour_table_matches_dense_float64_omega(k):
    want_items, want_weights, omega = reference_neighbors(k)
    # Spot-check omega's formula on one entry: G_01 = 1 (user 0), g_0 = d_0 + d_2 = 5,
    # g_1 = d_0 + d_1 = 5.
    assert omega[0, 1] == pytest.approx(1 * np.sqrt(6) / 5 / np.sqrt(6), rel=1e-15)
    for budget in (1, 4, 1 << 24):  # one row per block ... the whole G at once
        items, weights = item_neighbors(_interactions(), N_ITEMS, k, budget=budget)
        np.testing.assert_array_equal(items, want_items)
        np.testing.assert_allclose(weights, want_weights, rtol=1e-15)
    assert items.dtype == np.int32 and items.shape == (N_ITEMS, k)
    # The diagonal is kept: item 5 (one user, who has only it) is its own neighbour.
    assert items[5, 0] == 5 and weights[5, 0] > 0
    # Item 6 has no user: padded with itself at weight 0.
    assert (items[6] == 6).all() and (weights[6] == 0).all()


def test_item_item_loss_and_its_gradient_against_float64():
    rng = np.random.default_rng(0)
    user_rows = rng.standard_normal((4, 3))
    table = rng.standard_normal((N_ITEMS, 3))
    neighbors = rng.integers(0, N_ITEMS, (4, 2))
    omega = rng.uniform(0, 2, (4, 2))
    logits = np.einsum("bd,bkd->bk", user_rows, table[neighbors])
    want = (omega * np.logaddexp(0, -logits)).sum(1)
    got = item_item_loss(*(jnp.asarray(x, jnp.float32) for x in (user_rows, table)),
                         jnp.asarray(neighbors), jnp.asarray(omega, jnp.float32))  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-5)
    with jax.enable_x64(True):
        check_grads(lambda u, t: item_item_loss(u, t, neighbors, omega), (user_rows, table),
                    order=1, modes=["rev"])  # fmt: skip


def test_extra_loss_is_lambda_item_item_plus_gamma_norm_over_batch_in_float64():
    cfg = TrainConfig(backbone="ultragcn", ultragcn_neighbors=3, ultragcn_lambda=0.7,
                      ultragcn_gamma=0.05, emb_dim=4)  # fmt: skip
    rng = np.random.default_rng(1)
    params = {
        "user": rng.standard_normal((len(_TRAIN), 4)),
        "item": rng.standard_normal((N_ITEMS, 4)),
    }
    items, weights, _ = reference_neighbors(3)
    users, pos = np.array([0, 1, 3, 4]), np.array([2, 1, 4, 5])
    logits = np.einsum("bd,bkd->bk", params["user"][users], params["item"][items[pos]])
    item_item = (weights[pos] * np.logaddexp(0, -logits)).sum(1).mean()
    norm = (np.sum(params["user"] ** 2) + np.sum(params["item"] ** 2)) / 2
    want = 0.7 * item_item + 0.05 * norm / len(users)
    data = registry.BACKBONES["ultragcn"].prepare(cfg, _tiny_split())
    got = extra_loss(cfg, jax.tree_util.tree_map(jnp.float32, params), jnp.asarray(users),
                     jnp.asarray(pos), None, jax.tree_util.tree_map(jnp.asarray, data))  # fmt: skip
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_step_objective_is_ultragcns_objective_in_float64():
    """A CF step under --loss=ultragcn minimises mean L_L + lambda mean L_I + gamma
    ||theta||^2 / 2 / B: its reported objective against float64 NumPy from the tables."""
    batch = Batch(users=jnp.array([0, 1, 2, 3]), pos=jnp.array([1, 2, 3, 4]),
                  negs=jnp.array([[3, 4, 6], [0, 4, 5], [1, 5, 6], [0, 1, 6]]),
                  key=jax.random.key(0))  # fmt: skip
    cfg = TrainConfig(backbone="ultragcn", loss="ultragcn", l2_reg=0.0, batch_size=4, n_neg=3,
                      emb_dim=8, ultragcn_init_std=0.3, ultragcn_neighbors=2,
                      ultragcn_lambda=0.4, ultragcn_gamma=0.02, ultragcn_w1=0.1,
                      ultragcn_w3=0.2, ultragcn_negative_weight=2.0)  # fmt: skip
    run = setup_run(cfg, _tiny_split())
    # Jitted: eager, the step's many small ops take ~8x longer than compiling it.
    _, stats = jax.jit(cf_step, static_argnums=0)(cfg, run.state, run.train_data, batch)

    user, item = (np.asarray(run.state.cf_params[k], np.float64) for k in ("user", "item"))
    users, pos, negs = (np.asarray(x) for x in (batch.users, batch.pos, batch.negs))
    d_user = np.array([len(items) for items in _TRAIN], np.float64)
    d_item = np.bincount(np.concatenate(_TRAIN), minlength=N_ITEMS).astype(np.float64)

    def beta(u, i):
        return np.sqrt((d_user[u] + 1) / (d_item[i] + 1)) / d_user[u]

    s_pos = np.sum(user[users] * item[pos], -1)
    s_neg = np.einsum("bd,bnd->bn", user[users], item[negs])
    l_l = (0.1 + beta(users, pos)) * np.logaddexp(0, -s_pos) + 2.0 * (
        (0.2 + beta(users[:, None], negs)) * np.logaddexp(0, s_neg)
    ).mean(1)
    items, weights, _ = reference_neighbors(2)
    s_nb = np.einsum("bd,bkd->bk", user[users], item[items[pos]])
    l_i = (weights[pos] * np.logaddexp(0, -s_nb)).sum(1)
    norm = (np.sum(user**2) + np.sum(item**2)) / 2
    want = l_l.mean() + 0.4 * l_i.mean() + 0.02 * norm / len(users)
    assert float(stats["loss"]) == pytest.approx(want, rel=1e-5)


def test_scores_by_dot_under_its_own_loss_and_by_cosine_under_infonce():
    spec = registry.BACKBONES["ultragcn"]
    params = {"user": jnp.array([[1.0, 0.0], [0.0, 3.0]]), "item": jnp.array([[10.0, 0], [1, 1]])}
    for loss, scoring in [("ultragcn", "dot"), ("infonce", "cosine"), ("adv_infonce", "cosine")]:
        cfg = TrainConfig(backbone="ultragcn", loss=loss)
        model = trained_model(spec, cfg, params, None, "bcoo")
        assert model.scoring == scoring
    dot = trained_model(spec, TrainConfig(backbone="ultragcn", loss="ultragcn"), params, None, "")
    cos = trained_model(spec, TrainConfig(backbone="ultragcn", loss="infonce"), params, None, "")
    # User 0 prefers item 0 by dot (10 > 1), and by cosine too (1 > 0.71); user 1 prefers
    # item 1 either way, but the dot score of user 1 and item 1 is 3, its cosine 0.71.
    np.testing.assert_allclose(dot.scores(jnp.array([0, 1])), [[10, 1], [0, 3]], rtol=1e-6)
    np.testing.assert_allclose(cos.scores(jnp.array([1])), [[0, 2**-0.5]], rtol=1e-6)
    for name in ("mf", "lightgcn"):
        assert registry.BACKBONES[name].scoring_of(TrainConfig()) == "cosine"


def test_bad_flags_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"ultragcn_neighbors must be > 0, got 0"):
        TrainConfig(backbone="ultragcn", ultragcn_neighbors=0)
    with pytest.raises(ConfigError, match=r"ultragcn_init_std must be > 0, got 0.0"):
        TrainConfig(backbone="ultragcn", ultragcn_init_std=0.0)
    with pytest.raises(ConfigError, match=r"ultragcn_lambda must be >= 0, got -1.0"):
        TrainConfig(backbone="ultragcn", ultragcn_lambda=-1.0)
    with pytest.raises(ConfigError, match=r"--ultragcn_gamma=0.5 is a setting of "
                       r"--backbone=ultragcn; this run's backbone is mf"):  # fmt: skip
        TrainConfig(ultragcn_gamma=0.5)
    with pytest.raises(ConfigError, match=r"--augment=sgl acts on propagation layers"):
        TrainConfig(backbone="ultragcn", loss="infonce", augment="sgl")


def test_trains_on_coat_through_the_cli(tmp_path):
    """Its flagfile, cut to 30 epochs (about 8 s here)."""
    proc = run_module(
        "experiments.run", "--flagfile=experiments/configs/coat_ultragcn.flags",
        "--max_epochs=30", "--eval_every=10", f"--workdir={tmp_path}/w", "--compilation_cache=",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "UltraGCN + ultragcn" in proc.stdout
    results = json.loads((tmp_path / "w" / "results.json").read_text())
    assert results["flags"]["backbone"] == "ultragcn"
    # Random embeddings give about 0.07 test Recall@20 on Coat (tests/train/test_loop.py);
    # the full run reaches 0.26.
    assert np.isfinite(results["test_ood"]["recall@20"])
    assert results["valid"]["recall@20"] > 0.15 and results["test_ood"]["recall@20"] > 0.12
