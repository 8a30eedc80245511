import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax import scores as scores_lib
from advjax.initializers import init_embeddings
from advjax.losses.hardness import hardness_logits, init_hardness


@pytest.mark.parametrize("n_items", [50, 5000])  # dense path, then row-gather path
def test_pair_scores_matches_numpy_and_both_paths_agree(n_items, monkeypatch):
    rng = np.random.default_rng(0)
    users = rng.normal(size=(16, 8)).astype(np.float32)
    table = rng.normal(size=(n_items, 8)).astype(np.float32)
    items = rng.integers(0, n_items, size=(16, 4))
    expected = np.einsum("bd,bnd->bn", users.astype(np.float64), table[items].astype(np.float64))
    got = scores_lib.pair_scores(jnp.asarray(users), jnp.asarray(table), jnp.asarray(items))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)

    def weighted(users, table, threshold):
        monkeypatch.setattr(scores_lib, "DENSE_ITEMS_PER_NEG", threshold)
        return jnp.sum(scores_lib.pair_scores(users, table, jnp.asarray(items)) ** 2)

    grads = [
        jax.grad(weighted, argnums=(0, 1))(jnp.asarray(users), jnp.asarray(table), t)
        for t in (0, 10**9)  # forced gather, forced dense
    ]
    for by_gather, by_dense in zip(*grads, strict=True):
        np.testing.assert_allclose(np.asarray(by_gather), np.asarray(by_dense), atol=1e-4)


def test_l2_normalize_unit_rows_and_zero_rows():
    x = jnp.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(np.asarray(scores_lib.l2_normalize(x)), [[0.6, 0.8], [0, 0]])


def test_embed_hardness_is_inner_product_of_hardness_tables():
    adv = init_hardness(jax.random.key(0), "embed", n_users=10, n_items=20)
    users, negs = jnp.array([1, 3]), jnp.array([[0, 5, 19], [2, 2, 7]])
    got = hardness_logits(adv, "embed", users, negs, cf_params={})
    a, b = np.asarray(adv["user"]), np.asarray(adv["item"])
    expected = np.einsum("bd,bnd->bn", a[[1, 3]], b[np.asarray(negs)])
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-7)


def test_mlp_hardness_reads_cf_embeddings_without_gradient():
    cf = init_embeddings(jax.random.key(1), 10, 20, 64)
    adv = init_hardness(jax.random.key(2), "mlp", n_users=10, n_items=20, cf_dim=64)
    assert adv["user_w"].shape == (64, 4)
    users, negs = jnp.array([1, 3]), jnp.array([[0, 5, 19], [2, 2, 7]])

    def total(cf, adv):
        return jnp.sum(hardness_logits(adv, "mlp", users, negs, cf))

    cf_grad, adv_grad = jax.grad(total, argnums=(0, 1))(cf, adv)
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree_util.tree_leaves(cf_grad))
    assert float(jnp.abs(adv_grad["user_w"]).max()) > 0.0
    e_u = np.asarray(cf["user"])[[1, 3]] @ np.asarray(adv["user_w"]) + np.asarray(adv["user_b"])
    e_j = np.asarray(cf["item"]) @ np.asarray(adv["item_w"]) + np.asarray(adv["item_b"])
    expected = np.einsum("bd,bnd->bn", np.maximum(e_u, 0), np.maximum(e_j, 0)[np.asarray(negs)])
    got = hardness_logits(adv, "mlp", users, negs, cf)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)
