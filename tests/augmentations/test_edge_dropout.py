import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax.augmentations.edge_dropout import drop_edges, edge_pairs, mask_edges
from advjax.data import load_dataset
from advjax.data.graph import Graph, normalized_graph
from advjax.data.splits import Interactions
from advjax.models.host_propagation import item_gram
from advjax.models.propagation import METHODS, propagate, propagate_rows
from tests.float64 import dense_adjacency, layer_mean


def _tiny(seed: int = 0, n_users: int = 7, n_items: int = 9) -> tuple[Graph, int]:
    """A random bipartite graph, some of whose nodes have one edge or none."""
    dense = np.random.default_rng(seed).random((n_users, n_items)) < 0.35
    dense[0] = False  # an isolated user
    dense[1] = np.arange(n_items) == 2  # a user of degree 1
    train = Interactions(
        indptr=np.concatenate([[0], np.cumsum(dense.sum(1))]),
        items=np.nonzero(dense)[1].astype(np.int32),
        path="tiny",
    )
    return normalized_graph(train, n_items), n_users


def _coat() -> tuple[Graph, int]:
    data = load_dataset("coat")  # as advjax/train/setup.py builds its graph
    return normalized_graph(data.train, data.n_items), data.n_users


def _reference(graph: Graph, keep: np.ndarray) -> np.ndarray:
    """D'^-1/2 A' D'^-1/2 of the kept entries, densely in float64, from the structure only."""
    n = graph.indptr.shape[0] - 1
    adj = np.zeros((n, n))
    adj[graph.rows[keep], graph.cols[keep]] = 1.0
    deg = adj.sum(1)
    inv_sqrt = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1)), 0.0)
    return inv_sqrt[:, None] * adj * inv_sqrt[None, :]


@pytest.mark.parametrize("build", [_tiny, _coat])
def test_edge_pairs_pair_each_entry_with_its_reverse(build):
    graph, n_users = build()
    pairs = edge_pairs(graph, n_users)
    n_edges = graph.rows.shape[0] // 2
    assert pairs.dtype == np.int32 and pairs.shape == graph.rows.shape
    np.testing.assert_array_equal(pairs[:n_edges], np.arange(n_edges))
    np.testing.assert_array_equal(np.bincount(pairs), np.full(n_edges, 2))
    np.testing.assert_array_equal(graph.rows[pairs[n_edges:]], graph.cols[n_edges:])
    np.testing.assert_array_equal(graph.cols[pairs[n_edges:]], graph.rows[n_edges:])


def test_edge_pairs_rejects_graphs_without_pairs():
    graph, n_users = _tiny()
    with pytest.raises(ValueError, match="bipartite"):
        edge_pairs(graph, n_users + 1)  # node n_users becomes a user with user edges
    n_edges = graph.rows.shape[0] // 2
    cols = graph.cols.copy()
    cols[n_edges:] = np.roll(cols[n_edges:], 1)
    with pytest.raises(ValueError, match="symmetric"):
        edge_pairs(graph._replace(cols=cols), n_users)


@pytest.mark.parametrize("seed", range(4))
def test_mask_edges_matches_float64_reference(seed):
    graph, n_users = _tiny(seed)
    n_items = graph.indptr.shape[0] - 1 - n_users
    keep_pair = np.random.default_rng(seed + 10).random((n_users, n_items)) < 0.6
    user = np.minimum(graph.rows, graph.cols)
    item = np.maximum(graph.rows, graph.cols) - n_users
    keep = keep_pair[user, item]  # one draw per undirected edge, both entries alike
    masked = mask_edges(jax.tree.map(jnp.asarray, graph), keep)
    np.testing.assert_allclose(dense_adjacency(masked), _reference(graph, keep), rtol=1e-6, atol=0)
    np.testing.assert_array_equal(np.asarray(masked.weights)[~keep], 0.0)
    assert masked.item_gram.shape == (0, 0) and masked.item_gram.dtype == jnp.float32


@pytest.mark.parametrize("build", [_tiny, _coat])
@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_drop_edges_renormalises_a_symmetric_mask(build, rate):
    graph, n_users = build()
    dropped = drop_edges(jax.random.key(3), graph, edge_pairs(graph, n_users), rate)
    for name in ("rows", "cols", "indptr"):
        np.testing.assert_array_equal(getattr(dropped, name), getattr(graph, name))
    weights = np.asarray(dropped.weights)
    assert weights.dtype == np.float32 and np.all(weights >= 0)
    keep = weights > 0  # every kept entry has a positive weight
    dense = dense_adjacency(dropped)
    np.testing.assert_array_equal(dense, dense.T)  # exactly symmetric
    np.testing.assert_allclose(dense, _reference(graph, keep), rtol=1e-6, atol=0)


def test_rate_zero_is_the_input_bit_for_bit_and_rate_one_drops_everything():
    graph, n_users = _coat()
    # As prepare_graph attaches it where it pays off (Coat's catalogue is too large).
    prepared = graph._replace(item_gram=item_gram(graph, n_users))
    pairs = edge_pairs(graph, n_users)
    same = drop_edges(jax.random.key(0), prepared, pairs, 0.0)
    np.testing.assert_array_equal(same.weights, graph.weights)
    assert same.item_gram.shape == (0, 0)
    none = drop_edges(jax.random.key(0), prepared, pairs, 1.0)
    np.testing.assert_array_equal(none.weights, 0.0)


@pytest.mark.parametrize("rate", [0.99, 1.0])
def test_isolated_nodes_get_no_nan(rate):
    graph, n_users = _coat()
    dropped = drop_edges(jax.random.key(1), graph, edge_pairs(graph, n_users), rate)
    n = graph.indptr.shape[0] - 1
    isolated = np.bincount(graph.rows[np.asarray(dropped.weights) > 0], minlength=n) == 0
    assert isolated.mean() > 0.7  # most of Coat's nodes lose every edge
    chex.assert_tree_all_finite(dropped.weights)
    x = jax.random.normal(jax.random.key(2), (n, 4))
    out = np.asarray(propagate(x, dropped, 3, "segment_sum"))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[isolated], np.asarray(x)[isolated] / 4, rtol=1e-6)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_kept_fraction_is_one_minus_rate(rate):
    graph, n_users = _coat()
    pairs = edge_pairs(graph, n_users)
    n_edges, n_draws = graph.rows.shape[0] // 2, 40
    drop = jax.jit(drop_edges)
    keys = jax.random.split(jax.random.key(7), n_draws)
    kept = np.stack([np.asarray(drop(k, graph, pairs, rate).weights[:n_edges]) > 0 for k in keys])
    keep_p = 1 - rate
    # 5 standard errors of a Bernoulli mean: a failure means a bias, not bad luck.
    sigma = np.sqrt(keep_p * (1 - keep_p) / kept.size)
    assert abs(kept.mean() - keep_p) < 5 * sigma
    # Different keys draw independently: both of two views keep an edge w.p. (1 - rate)^2.
    both = (kept[0::2] & kept[1::2]).mean()
    sigma_both = np.sqrt(keep_p**2 * (1 - keep_p**2) / (kept.size / 2))
    assert abs(both - keep_p**2) < 5 * sigma_both


def test_every_path_propagates_the_dropped_graph_and_agrees_on_gradients():
    graph, n_users = _coat()
    dropped = drop_edges(jax.random.key(4), graph, edge_pairs(graph, n_users), 0.3)
    adj = _reference(graph, np.asarray(dropped.weights) > 0)
    rng = np.random.default_rng(5)
    x, w = rng.normal(size=(2, adj.shape[0], 8))
    expected = layer_mean(adj, x, 3)
    # d/dx sum(w * M x) = M^T w, and the layer mean M of a symmetric A' is symmetric.
    expected_grad = layer_mean(adj.T, w, 3)

    def objective(x, graph, w, method):
        return jnp.sum(w * propagate(x, graph, 3, method))

    x32, w32 = jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32)
    grads = {}
    for method in METHODS:
        got = jax.jit(propagate, static_argnums=(2, 3))(x32, dropped, 3, method)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)
        grads[method] = jax.jit(jax.grad(objective), static_argnums=3)(x32, dropped, w32, method)
        np.testing.assert_allclose(np.asarray(grads[method]), expected_grad, rtol=1e-5, atol=1e-5)
    for method in METHODS[1:]:
        chex.assert_trees_all_close(grads[method], grads["bcoo"], rtol=1e-5, atol=1e-6)


def test_host_rows_of_a_dropped_prepared_graph_ignore_the_full_graphs_gram():
    graph, n_users = _coat()
    gram = item_gram(graph, n_users)
    dropped = drop_edges(
        jax.random.key(6), graph._replace(item_gram=gram), edge_pairs(graph, n_users), 0.3
    )
    x = np.random.default_rng(8).normal(size=(graph.indptr.shape[0] - 1, 8))
    expected = layer_mean(_reference(graph, np.asarray(dropped.weights) > 0), x, 2)
    x = jnp.asarray(x, jnp.float32)
    users = jnp.array([0, 5, 5, n_users - 1])
    rows, items = propagate_rows(x[:n_users], x[n_users:], dropped, users, 2, "host_csr")
    np.testing.assert_allclose(np.asarray(rows), expected[np.asarray(users)], atol=1e-6)
    np.testing.assert_allclose(np.asarray(items), expected[n_users:], atol=1e-6)
    # The full graph's Gram would have been wrong here: it propagates the undropped A^2.
    _, stale = propagate_rows(
        x[:n_users], x[n_users:], dropped._replace(item_gram=gram), users, 2, "host_csr"
    )
    assert not np.allclose(np.asarray(stale), expected[n_users:], atol=1e-3)


def test_jit_traces_once_for_new_keys_and_rates():
    graph, n_users = _tiny()
    graph = jax.tree.map(jnp.asarray, graph)
    pairs = jnp.asarray(edge_pairs(graph, n_users))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def drop(key, graph, pairs, rate):
        return drop_edges(key, graph, pairs, rate)

    views = [drop(jax.random.key(k), graph, pairs, rate) for k in range(3) for rate in (0.2, 0.4)]
    masks = {tuple(np.asarray(v.weights) > 0) for v in views}
    assert len(masks) > 1  # new keys draw new graphs


def test_drop_edges_validates_its_arguments():
    graph, n_users = _tiny()
    pairs = edge_pairs(graph, n_users)
    with pytest.raises(ValueError, match="rate"):
        drop_edges(jax.random.key(0), graph, pairs, 1.5)
    with pytest.raises(ValueError, match="pairs"):
        drop_edges(jax.random.key(0), graph, pairs[:-2], 0.1)
