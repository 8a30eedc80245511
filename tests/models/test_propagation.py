import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from advjax.data import load_dataset
from advjax.data.graph import Graph, normalized_graph
from advjax.models import init_embeddings, lightgcn_embed, lightgcn_rows, propagate, propagation
from advjax.models.propagation import METHODS, item_gram
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


@pytest.mark.parametrize("method", ["segment_sum", "host_csr", "csr"])
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


@pytest.mark.parametrize("method", ["host_csr", "csr"])
def test_custom_vjp_paths_pass_check_grads(method):
    # Their VJP is the forward operator itself (A is symmetric); finite differences of
    # the float64 layer mean check that, independently of the BCOO comparison above.
    data = load_dataset("coat")
    graph = _device_graph(data)
    x = np.random.default_rng(3).normal(size=(data.n_users + data.n_items, 4))
    with jax.enable_x64(True):
        check_grads(
            lambda x: propagate(x, graph, 2, method), (jnp.asarray(x),), order=1, modes=("rev",)
        )


def test_item_gram_is_the_item_block_of_a_squared():
    data = load_dataset("coat")
    adj = _dense_adjacency(data)
    gram = item_gram(normalized_graph(data.train, data.n_items), data.n_users)
    expected = (adj @ adj)[data.n_users :, data.n_users :]
    np.testing.assert_allclose(gram, expected, rtol=1e-5, atol=1e-7)


def _rows_objective(params, graph, users, w_rows, w_items, n_layers, method, gram):
    rows, items = lightgcn_rows(params, graph, users, n_layers=n_layers, method=method, gram=gram)
    return jnp.sum(w_rows * rows) + jnp.sum(w_items * items)


_rows_value_and_grad = jax.jit(
    jax.value_and_grad(_rows_objective), static_argnames=("n_layers", "method")
)


@pytest.mark.parametrize("n_layers", [1, 2, 3, 4])
@pytest.mark.parametrize("use_gram", [False, True])
def test_rows_equal_float64_reference_values_and_gradients(n_layers, use_gram, monkeypatch):
    # A low threshold splits Coat's products into row blocks, so the threaded path runs.
    monkeypatch.setattr(propagation, "_PARALLEL_MIN_NNZ", 500)
    data = load_dataset("coat")
    adj = _dense_adjacency(data)
    n_users = data.n_users
    rng = np.random.default_rng(n_layers)
    params = {
        "user": rng.normal(size=(n_users, 8)).astype(np.float32),
        "item": rng.normal(size=(data.n_items, 8)).astype(np.float32),
    }
    users = np.concatenate([rng.integers(0, n_users, 40), [3, 3, 3]])  # with repeats
    w_rows = rng.normal(size=(len(users), 8))
    w_items = rng.normal(size=(data.n_items, 8))
    # Float64 reference: the full layer mean as one polynomial operator M.
    op, power = np.eye(len(adj)), np.eye(len(adj))
    for _ in range(n_layers):
        power = adj @ power
        op += power
    op /= n_layers + 1
    nodes = np.concatenate([params["user"], params["item"]]).astype(np.float64)
    out = op @ nodes
    expected_value = np.sum(w_rows * out[users]) + np.sum(w_items * out[n_users:])
    cotangent = np.zeros_like(out)
    np.add.at(cotangent, users, w_rows)
    cotangent[n_users:] += w_items
    expected_grad = op.T @ cotangent

    graph = _device_graph(data)
    gram = jnp.asarray(item_gram(normalized_graph(data.train, data.n_items), n_users))
    value, grads = _rows_value_and_grad(
        jax.tree.map(jnp.asarray, params), graph, jnp.asarray(users),
        jnp.asarray(w_rows, jnp.float32), jnp.asarray(w_items, jnp.float32),
        n_layers=n_layers, method="host_csr", gram=gram if use_gram else None,
    )  # fmt: skip
    np.testing.assert_allclose(float(value), expected_value, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(grads["user"]), expected_grad[:n_users], atol=1e-5)
    np.testing.assert_allclose(np.asarray(grads["item"]), expected_grad[n_users:], atol=1e-5)


@pytest.mark.parametrize("method", ["host_csr", "segment_sum", "csr"])
def test_rows_equal_bcoo_full_propagation_on_yahoo(method):
    data = shared_split("yahoo.new")
    graph = _device_graph(data)
    params = init_embeddings(jax.random.key(0), data.n_users, data.n_items, 64)
    users = jax.random.randint(jax.random.key(1), (1024,), 0, data.n_users)
    w_rows = jax.random.normal(jax.random.key(2), (1024, 64))
    w_items = jax.random.normal(jax.random.key(3), (data.n_items, 64))
    gram = None
    if method == "host_csr":
        gram = jnp.asarray(item_gram(normalized_graph(data.train, data.n_items), data.n_users))
    args = (graph, users, w_rows, w_items)
    ref_value, ref_grads = _rows_value_and_grad(params, *args, n_layers=2, method="bcoo", gram=None)
    value, grads = _rows_value_and_grad(params, *args, n_layers=2, method=method, gram=gram)
    np.testing.assert_allclose(float(value), float(ref_value), rtol=1e-5)
    for name in ("user", "item"):
        np.testing.assert_allclose(np.asarray(grads[name]), np.asarray(ref_grads[name]), atol=1e-5)


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
    with pytest.raises(ValueError, match="unknown propagation method 'coo'"):
        propagate(x, _device_graph(data), 1, "coo")
