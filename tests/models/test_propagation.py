import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from advjax.data import load_dataset
from advjax.data.graph import Graph, empty_graph, normalized_graph
from advjax.models import (
    host_propagation,
    init_embeddings,
    lightgcn_embed,
    lightgcn_rows,
    propagate,
    propagation,
)
from advjax.models.host_propagation import item_gram
from advjax.models.propagation import METHODS, prepare_graph
from tests.float64 import dense_adjacency, layer_mean
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
    built = dense_adjacency(graph)
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
    expected = layer_mean(adj, x, 3)
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


def _prepared_graph(data, n_layers: int, method: str) -> Graph:
    return prepare_graph(normalized_graph(data.train, data.n_items), data.n_users, n_layers, method)


def _rows_objective(params, graph, users, w_rows, w_items, n_layers, method):
    rows, items = lightgcn_rows(params, graph, users, n_layers=n_layers, method=method)
    return jnp.sum(w_rows * rows) + jnp.sum(w_items * items)


_rows_value_and_grad = jax.jit(
    jax.value_and_grad(_rows_objective), static_argnames=("n_layers", "method")
)


@pytest.mark.parametrize("n_layers", [1, 2, 3, 4])
@pytest.mark.parametrize("use_gram", [False, True])
def test_rows_equal_float64_reference_values_and_gradients(n_layers, use_gram, monkeypatch):
    # A low threshold splits Coat's products into row blocks, so the threaded path runs.
    monkeypatch.setattr(host_propagation, "_PARALLEL_MIN_NNZ", 500)
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
    op = layer_mean(adj, np.eye(len(adj)), n_layers)
    nodes = np.concatenate([params["user"], params["item"]]).astype(np.float64)
    out = op @ nodes
    expected_value = np.sum(w_rows * out[users]) + np.sum(w_items * out[n_users:])
    cotangent = np.zeros_like(out)
    np.add.at(cotangent, users, w_rows)
    cotangent[n_users:] += w_items
    expected_grad = op.T @ cotangent

    graph = _device_graph(data)
    if use_gram:
        gram = jnp.asarray(item_gram(normalized_graph(data.train, data.n_items), n_users))
        graph = graph._replace(item_gram=gram)
    value, grads = _rows_value_and_grad(
        jax.tree.map(jnp.asarray, params), graph, jnp.asarray(users),
        jnp.asarray(w_rows, jnp.float32), jnp.asarray(w_items, jnp.float32),
        n_layers=n_layers, method="host_csr",
    )  # fmt: skip
    np.testing.assert_allclose(float(value), expected_value, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(grads["user"]), expected_grad[:n_users], atol=1e-5)
    np.testing.assert_allclose(np.asarray(grads["item"]), expected_grad[n_users:], atol=1e-5)


@pytest.mark.parametrize("method", ["host_csr", "segment_sum", "csr"])
def test_rows_equal_bcoo_full_propagation_on_yahoo(method):
    data = shared_split("yahoo.new")
    params = init_embeddings(jax.random.key(0), data.n_users, data.n_items, 64)
    users = jax.random.randint(jax.random.key(1), (1024,), 0, data.n_users)
    w_rows = jax.random.normal(jax.random.key(2), (1024, 64))
    w_items = jax.random.normal(jax.random.key(3), (data.n_items, 64))
    args = (users, w_rows, w_items)
    ref_value, ref_grads = _rows_value_and_grad(
        params, _device_graph(data), *args, n_layers=2, method="bcoo"
    )
    graph = _prepared_graph(data, 2, method)  # host_csr: with Yahoo!R3's item Gram
    assert graph.item_gram.shape == ((data.n_items,) * 2 if method == "host_csr" else (0, 0))
    value, grads = _rows_value_and_grad(params, graph, *args, n_layers=2, method=method)
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


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_rows_equal_embed_rows_with_the_gram_attached(method, n_layers):
    # Every path reads the same operand; only host_csr uses its Gram, the others ignore it.
    data = load_dataset("coat")
    host = normalized_graph(data.train, data.n_items)
    graph = _device_graph(data)._replace(item_gram=jnp.asarray(item_gram(host, data.n_users)))
    params = init_embeddings(jax.random.key(0), data.n_users, data.n_items, 16)
    users = jax.random.randint(jax.random.key(1), (64,), 0, data.n_users)
    user_emb, item_emb = lightgcn_embed(params, graph, n_layers=n_layers, method="bcoo")
    rows_fn = jax.jit(lightgcn_rows, static_argnames=("n_layers", "method"))
    rows, items = rows_fn(params, graph, users, n_layers=n_layers, method=method)
    np.testing.assert_allclose(np.asarray(rows), np.asarray(user_emb)[users], atol=1e-5)
    np.testing.assert_allclose(np.asarray(items), np.asarray(item_emb), atol=1e-5)


def test_prepare_graph_attaches_the_gram_only_where_the_host_path_uses_it(monkeypatch):
    data = load_dataset("coat")
    host = normalized_graph(data.train, data.n_items)
    # Coat: 295^2 > 20 x its 1,363 training pairs, so two sparse products win.
    assert not propagation.gram_pays_off(data.n_items, data.train.nnz)
    assert prepare_graph(host, data.n_users, 2, "host_csr").item_gram.shape == (0, 0)
    monkeypatch.setattr(propagation, "gram_pays_off", lambda n_items, n_edges: True)
    graph = prepare_graph(host, data.n_users, 2, "host_csr")
    np.testing.assert_array_equal(np.asarray(graph.item_gram), item_gram(host, data.n_users))
    assert graph.item_gram.dtype == jnp.float32
    for field in Graph._fields[:4]:  # the edges themselves, now on the device
        assert isinstance(getattr(graph, field), jax.Array)
        np.testing.assert_array_equal(np.asarray(getattr(graph, field)), getattr(host, field))
    assert graph.rows.shape[0] == 2 * data.train.nnz
    for n_layers, method in [(1, "host_csr"), (2, "bcoo"), (2, "segment_sum"), (2, "csr")]:
        assert prepare_graph(host, data.n_users, n_layers, method).item_gram.shape == (0, 0)


def test_graphs_with_and_without_gram_pass_through_jit():
    data = load_dataset("coat")

    @jax.jit
    def summary(graph):
        return graph.rows.shape[0] + graph.item_gram.shape[0] + jnp.sum(graph.weights)

    for graph in (
        empty_graph(),
        prepare_graph(empty_graph(), data.n_users, 0, "host_csr"),
        _prepared_graph(data, 2, "bcoo"),
        _device_graph(data)._replace(item_gram=jnp.ones((data.n_items, data.n_items))),
    ):
        expected = graph.rows.shape[0] + graph.item_gram.shape[0] + np.sum(graph.weights)
        np.testing.assert_allclose(float(summary(graph)), expected, rtol=1e-6)


def test_auto_reads_the_environment_variable_then_the_table(monkeypatch):
    platform = jax.default_backend()
    monkeypatch.delenv(propagation.ENV_VAR, raising=False)
    assert propagation.resolve_method("auto") == propagation.DEFAULT_METHOD.get(platform, "bcoo")
    monkeypatch.setenv(propagation.ENV_VAR, "segment_sum")  # one name: this platform
    assert propagation.resolve_method("auto") == "segment_sum"
    monkeypatch.setenv(propagation.ENV_VAR, f" {platform}=csr, tpu=bcoo ")
    assert propagation.resolve_method("auto") == "csr"
    monkeypatch.setenv(propagation.ENV_VAR, "not_this_platform=csr")  # keeps the table
    assert propagation.resolve_method("auto") == propagation.DEFAULT_METHOD.get(platform, "bcoo")
    monkeypatch.setenv(propagation.ENV_VAR, "")
    assert propagation.resolve_method("auto") == propagation.DEFAULT_METHOD.get(platform, "bcoo")
    monkeypatch.setenv(propagation.ENV_VAR, "csr")
    assert propagation.resolve_method("bcoo") == "bcoo"  # an explicit path ignores it


@pytest.mark.parametrize(
    "value, message",
    [
        ("coo", "unknown propagation method 'coo'"),
        ("not_this_platform=coo", "unknown propagation method 'coo'"),  # checked anyway
        ("auto", "unknown propagation method 'auto'"),
        ("gpu=csr,cpu", "platform=method pairs"),
        ("gpu=", "platform=method pairs"),
        ("gpu=csr,gpu=bcoo", "platform=method pairs"),
    ],
)
def test_bad_environment_variable_is_a_clear_error(monkeypatch, value, message):
    monkeypatch.setenv(propagation.ENV_VAR, value)
    with pytest.raises(ValueError, match=f"ADVJAX_PROPAGATION=.*{message}"):
        propagation.resolve_method("auto")


@pytest.mark.parametrize("method", METHODS)
def test_layers_match_float64_reference_values_and_gradients(method):
    """propagate_layers: each layer A^l x against a dense float64 product; their mean is
    `propagate`; a `between` hook acts on each layer before the next product reads it;
    gradients equal BCOO's and finite differences (float64)."""
    from advjax.models.propagation import propagate_layers

    data = load_dataset("coat")
    adj, graph = _dense_adjacency(data), _device_graph(data)
    x = np.random.default_rng(4).normal(size=(adj.shape[0], 8))
    layers = propagate_layers(jnp.asarray(x, jnp.float32), graph, 3, method)
    expected = [x]
    for _ in range(3):
        expected.append(adj @ expected[-1])
    for got, want in zip(layers, expected, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    mean = propagate(jnp.asarray(x, jnp.float32), graph, 3, method)
    np.testing.assert_allclose(np.asarray(sum(layers) / 4), np.asarray(mean), atol=1e-6)

    def halve(number, layer):
        return layer * 0.5 if number == 1 else layer

    hooked = propagate_layers(jnp.asarray(x, jnp.float32), graph, 2, method, between=halve)
    np.testing.assert_allclose(np.asarray(hooked[2]), adj @ (0.5 * (adj @ x)), atol=1e-5)

    w = jax.random.normal(jax.random.key(5), (adj.shape[0], 8), jnp.float32)

    def objective(x, graph, method):
        return sum(jnp.sum(w * layer**2) for layer in propagate_layers(x, graph, 2, method))

    grad = jax.jit(jax.grad(objective), static_argnums=2)(
        jnp.asarray(x, jnp.float32), graph, method
    )
    grad_bcoo = jax.grad(objective)(jnp.asarray(x, jnp.float32), graph, "bcoo")
    np.testing.assert_allclose(np.asarray(grad), np.asarray(grad_bcoo), rtol=1e-4, atol=1e-5)
    with jax.enable_x64(True):
        check_grads(
            lambda x: propagate_layers(x, graph, 2, method)[2], (jnp.asarray(x[:, :2]),),
            order=1, modes=("rev",),
        )  # fmt: skip


def test_host_callbacks_compute_in_numpy_alone():
    # jax.pure_callback hands its callback jax.Arrays; a jnp operation on them inside the
    # callback is a nested XLA computation, which deadlocked a 2-core run. The host
    # functions must turn their inputs into NumPy arrays and return NumPy arrays.
    from advjax.models import host_propagation

    data = load_dataset("coat")
    graph = _device_graph(data)
    adj = _dense_adjacency(data)
    x = np.random.default_rng(1).normal(size=(adj.shape[0], 8)).astype(np.float32)
    args = (graph.indptr, graph.cols, graph.weights, jnp.asarray(x))
    mean = host_propagation._host_layer_mean(*args, n_layers=2)
    product = host_propagation._host_product(*args)
    for got in (mean, product):
        assert type(got) is np.ndarray and got.dtype == np.float32
    np.testing.assert_allclose(mean, (x + adj @ x + adj @ adj @ x) / 3, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(product, adj @ x, rtol=1e-5, atol=1e-6)
    # The mean is bit for bit what the former jnp arithmetic gave: XLA computes the
    # division by 3 as a product by the rounded reciprocal, which differs from NumPy's
    # division in the last bit of some entries.
    second = host_propagation._host_product(*args[:3], product)
    total = x + product + second
    np.testing.assert_array_equal(mean, np.asarray(jnp.asarray(total) / 3))
    assert not np.array_equal(mean, total / np.float32(3))  # the check can tell them apart
