"""LightGCN propagation: mean of x, Ax, A^2x, ... over the normalised graph (SPEC §1).

Which path computes it, tested equal (tests/models/test_propagation.py):
  "bcoo", "segment_sum", "csr": sparse products on the device
    (advjax.models.device_propagation; "bcoo" is the reference);
  "host_csr": SciPy's CSR product on the host through jax.pure_callback
    (advjax.models.host_propagation; CPU: XLA's CPU scatter is the device paths' wall).

"auto" is data, not code: `resolve_method` reads the environment variable
ADVJAX_PROPAGATION, then the built-in DEFAULT_METHOD table, which records what
benchmarks/propagation.py measured per platform (see WORKSPACE.md). The variable holds
either one method for the current platform (`ADVJAX_PROPAGATION=csr`) or
comma-separated platform=method pairs (`ADVJAX_PROPAGATION=gpu=csr,cpu=host_csr`; a
platform not named keeps its table entry). A platform is jax.default_backend(). An
explicit method ignores the variable; results.json records the path that ran.

A training step needs every item's final embedding but only its batch's users:
`propagate_rows` computes just those, in the bipartite form on the host for "host_csr"
and by full propagation plus a row gather for the device paths. The host form's dense
item-item operator travels in the graph operand (`Graph.item_gram`): `prepare_graph`
builds that operand, attaching the operator where it pays off.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from advjax.data.graph import Graph
from advjax.errors import ConfigError
from advjax.models.device_propagation import device_product, device_propagate
from advjax.models.host_propagation import (
    gram_pays_off,
    host_csr_product,
    host_csr_propagate,
    host_csr_rows,
    item_gram,
)

__all__ = [
    "DEFAULT_METHOD",
    "ENV_VAR",
    "METHODS",
    "gram_pays_off",  # re-exported while advjax/train still imports it from here
    "item_gram",
    "prepare_graph",
    "propagate",
    "propagate_layers",
    "propagate_rows",
    "resolve_method",
]

METHODS = ("bcoo", "segment_sum", "host_csr", "csr")

# Faster path per jax.default_backend(), by benchmarks/propagation.py (WORKSPACE.md).
DEFAULT_METHOD = {"cpu": "host_csr", "gpu": "bcoo"}

ENV_VAR = "ADVJAX_PROPAGATION"


def _env_choices(platform: str) -> dict[str, str]:
    """ADVJAX_PROPAGATION as {platform: method}; empty when unset or blank."""
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return {}
    if "=" not in value:
        choices = {platform: value}
    else:
        choices = {}
        for pair in value.split(","):
            name, sep, method = (part.strip() for part in pair.partition("="))
            if not (sep and name and method) or name in choices:
                raise ConfigError(
                    f"{ENV_VAR}={value!r}: expected one method or platform=method pairs "
                    "such as gpu=csr,cpu=host_csr (each platform once)"
                )
            choices[name] = method
    # Every platform's entry is checked, so a typo for the GPU shows on the CPU too.
    for method in choices.values():
        if method not in METHODS:
            raise ConfigError(
                f"{ENV_VAR}={value!r}: unknown propagation method {method!r}; "
                f"choose one of {METHODS}"
            )
    return choices


def resolve_method(method: str) -> str:
    """Maps "auto" to this platform's path; validates explicit names.

    "auto" reads ADVJAX_PROPAGATION (module docstring), then DEFAULT_METHOD, then
    "bcoo". It is resolved when a function is traced, so set the variable before.

    Raises:
      ValueError (ConfigError): an unknown method, here or in ADVJAX_PROPAGATION.
    """
    if method == "auto":
        platform = jax.default_backend()
        from_env = _env_choices(platform).get(platform)
        return from_env or DEFAULT_METHOD.get(platform, "bcoo")
    if method not in METHODS:
        raise ValueError(f"unknown propagation method {method!r}; choose auto or one of {METHODS}")
    return method


def prepare_graph(graph: Graph, n_users: int, n_layers: int, method: str) -> Graph:
    """The model's graph operand: `graph` on the device, with what `method` reads.

    "host_csr" with L >= 2 layers on a small catalogue (gram_pays_off) gets the dense
    item-item operator G = R^T R as `item_gram`, so its training step applies G as one
    dense product instead of two sparse ones; every other case keeps the [0, 0] one.

    Args:
      graph: normalised adjacency over U + I nodes (normalized_graph), or empty_graph()
        for MF; NumPy or device arrays.
      n_users: U.
      n_layers: L.
      method: the path the model will run: "auto" or one of METHODS.

    Returns:
      The graph as device arrays, item_gram float32 [I, I] or [0, 0].
    """
    gram = np.zeros((0, 0), np.float32)
    if n_layers >= 2 and resolve_method(method) == "host_csr":
        n_items = graph.indptr.shape[0] - 1 - n_users
        if gram_pays_off(n_items, graph.rows.shape[0] // 2):
            gram = item_gram(graph, n_users)
    return Graph(*map(jnp.asarray, graph._replace(item_gram=gram)))


def propagate(x: jax.Array, graph: Graph, n_layers: int, method: str = "auto") -> jax.Array:
    """LightGCN's layer mean (1 / (L+1)) * sum_{l=0..L} A^l x.

    Args:
      x: [N, d] layer-0 embeddings of all nodes (users first, then items).
      graph: normalised adjacency over N nodes.
      n_layers: L >= 0; 0 returns x unchanged.
      method: "auto" or one of METHODS.

    Returns:
      [N, d] final embeddings.
    """
    if n_layers == 0:
        return x
    method = resolve_method(method)
    if method == "host_csr":
        return host_csr_propagate(graph, x, n_layers)
    return device_propagate(graph, x, n_layers, method)


def propagate_layers(
    x: jax.Array,
    graph: Graph,
    n_layers: int,
    method: str = "auto",
    between: Callable[[int, jax.Array], jax.Array] | None = None,
) -> list[jax.Array]:
    """Every layer of the propagation, one sparse product at a time: [x, A x1, A x2, ...]
    where x_l is layer l after `between` (for models that act between layers: XSimGCL's
    noise, NCL's and SGL's views). Their mean, without `between`, is `propagate`.

    Args:
      x: [N, d] layer-0 embeddings of all nodes (users first, then items).
      graph: normalised adjacency over N nodes, symmetric (e.g. edge-dropped views).
      n_layers: L >= 0.
      method: "auto" or one of METHODS; every path computes A @ x (the host one by
        SciPy, one callback per layer).
      between: (l, layer l) -> layer l as the next product reads it and as returned,
        for l = 1..L; None leaves the layers as they are.

    Returns:
      L + 1 arrays [N, d]: layer 0 (x itself) to layer L.
    """
    method = resolve_method(method)
    layers = [x]
    for number in range(1, n_layers + 1):
        layer = (
            host_csr_product(graph, layers[-1])
            if method == "host_csr"
            else device_product(graph, layers[-1], method)
        )
        layers.append(between(number, layer) if between else layer)
    return layers


def propagate_rows(
    x_users: jax.Array,
    x_items: jax.Array,
    graph: Graph,
    users: jax.Array,
    n_layers: int,
    method: str = "auto",
) -> tuple[jax.Array, jax.Array]:
    """The layer mean's rows of some users and of every item (a training step's need).

    Equal to propagating all nodes and taking rows `users`; "host_csr" computes only
    what those rows need, in the bipartite form (3 E edge passes per direction instead
    of 2 L E for L = 2), on the host, with graph.item_gram if attached (prepare_graph).

    Args:
      x_users: [U, d] layer-0 user embeddings.
      x_items: [I, d] layer-0 item embeddings.
      graph: normalised adjacency over U + I nodes.
      users: int [B] user ids (repeats allowed).
      n_layers: L >= 0.
      method: "auto" or one of METHODS.

    Returns:
      (user rows [B, d], item embeddings [I, d]).
    """
    if n_layers == 0:
        return x_users[users], x_items
    method = resolve_method(method)
    if method == "host_csr":
        return host_csr_rows(graph, x_users, x_items, users, n_layers)
    out = propagate(jnp.concatenate([x_users, x_items], axis=0), graph, n_layers, method)
    n_users = x_users.shape[0]
    return out[:n_users][users], out[n_users:]
