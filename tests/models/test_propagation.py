import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax.data import load_dataset
from advjax.data.graph import Graph, normalized_graph
from advjax.models import init_embeddings, lightgcn_embed, propagate
from advjax.models.propagation import METHODS
from tests.helpers import shared_split


def _dense_adjacency(data) -> np.ndarray:
    """D^-1/2 A D^-1/2 built densely in float64, independently of graph.py."""
    n_users, n = data.n_users, data.n_users + data.n_items
    adj = np.zeros((n, n))
    for u in range(n_users):
        for i in data.train.items[data.train.indptr[u] : data.train.indptr[u + 1]]:
            adj[u, n_users + i] = adj[n_users + i, u] = 1.0
    deg = adj.sum(1)
    inv_sqrt = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1)), 0.0)
    return inv_sqrt[:, None] * adj * inv_sqrt[None, :]


def _device_graph(data) -> Graph:
    return Graph(*map(jnp.asarray, normalized_graph(data.train, data.n_items)))


def test_graph_matches_dense_normalised_adjacency():
    data = load_dataset("coat")
    graph = normalized_graph(data.train, data.n_items)
    n = data.n_users + data.n_items
    built = np.zeros((n, n))
    built[graph.rows, graph.cols] = graph.weights
    np.testing.assert_allclose(built, _dense_adjacency(data), rtol=1e-6, atol=1e-7)
    order = np.lexsort((graph.cols, graph.rows))
    np.testing.assert_array_equal(order, np.arange(len(order)))  # sorted by (row, col)
    row_counts = np.bincount(graph.rows, minlength=n)
    np.testing.assert_array_equal(graph.indptr, np.concatenate([[0], np.cumsum(row_counts)]))


@pytest.mark.parametrize("method", METHODS)
def test_propagate_matches_float64_reference(method):
    data = load_dataset("coat")
    adj = _dense_adjacency(data)
    x = np.random.default_rng(0).normal(size=(adj.shape[0], 8))
    expected, layer = x.copy(), x.copy()
    for _ in range(3):
        layer = adj @ layer
        expected += layer
    expected /= 4
    got = propagate(jnp.asarray(x, jnp.float32), _device_graph(data), 3, method)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["segment_sum", "host_csr"])
@pytest.mark.parametrize("name", ["coat", "yahoo.new"])
def test_fast_paths_equal_bcoo_values_and_gradients(name, method):
    data = load_dataset("coat") if name == "coat" else shared_split(name)
    graph = _device_graph(data)
    n = data.n_users + data.n_items
    x = jax.random.normal(jax.random.key(1), (n, 64), jnp.float32)
    w = jax.random.normal(jax.random.key(2), (n, 64), jnp.float32)

    # Graph and weights are arguments, never closed over: XLA would constant-fold the
    # scatters of a closed-over graph and compile for minutes.
    def objective(x, graph, w, method):
        return jnp.sum(w * propagate(x, graph, 2, method))

    by_bcoo = propagate(x, graph, 2, "bcoo")
    by_method = jax.jit(propagate, static_argnums=(2, 3))(x, graph, 2, method)
    np.testing.assert_allclose(np.asarray(by_bcoo), np.asarray(by_method), atol=1e-5)
    grad_bcoo = jax.grad(objective)(x, graph, w, "bcoo")
    grad_method = jax.jit(jax.grad(objective), static_argnums=3)(x, graph, w, method)
    np.testing.assert_allclose(np.asarray(grad_bcoo), np.asarray(grad_method), atol=1e-5)


def test_lightgcn_with_zero_layers_is_mf():
    data = load_dataset("coat")
    params = init_embeddings(jax.random.key(0), data.n_users, data.n_items, 16)
    user_emb, item_emb = lightgcn_embed(params, _device_graph(data), n_layers=0)
    np.testing.assert_array_equal(np.asarray(user_emb), np.asarray(params["user"]))
    np.testing.assert_array_equal(np.asarray(item_emb), np.asarray(params["item"]))
    # And with layers it does propagate, users first then items.
    user_emb, item_emb = lightgcn_embed(params, _device_graph(data), n_layers=1, method="bcoo")
    nodes = np.concatenate([params["user"], params["item"]])
    expected = (nodes + _dense_adjacency(data) @ nodes) / 2
    np.testing.assert_allclose(np.asarray(user_emb), expected[: data.n_users], atol=1e-5)
    np.testing.assert_allclose(np.asarray(item_emb), expected[data.n_users :], atol=1e-5)


def test_unknown_method_rejected():
    data = load_dataset("coat")
    x = jnp.zeros((data.n_users + data.n_items, 4))
    with pytest.raises(ValueError, match="unknown propagation method 'csr'"):
        propagate(x, _device_graph(data), 1, "csr")
