"""LightGCN: layer-0 embeddings propagated over the user-item graph (SPEC §1).

The representations are the mean of layers 0..L of the normalised adjacency's powers
applied to the layer-0 tables (advjax.models.propagation, whichever path
--propagation resolves to). `--backbone=lightgcn --n_layers=L`; a configuration
without --backbone and with --n_layers >= 1 is LightGCN too (the flag's meaning
before --backbone existed).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from advjax.data.graph import Graph
from advjax.models import mf, propagation
from advjax.models.backbone import Backbone
from advjax.settings import Setting, non_negative


def lightgcn_embed(
    params: dict, graph: Graph, *, n_layers: int, method: str = "auto"
) -> tuple[jax.Array, jax.Array]:
    """Final user and item embeddings.

    Args:
      params: {"user": [U, d], "item": [I, d]} layer-0 embeddings.
      graph: normalised adjacency over U + I nodes.
      n_layers: number of propagation layers L.
      method: propagation path, see advjax.models.propagation.

    Returns:
      (user_emb [U, d], item_emb [I, d]).
    """
    n_users = params["user"].shape[0]
    nodes = jnp.concatenate([params["user"], params["item"]], axis=0)
    out = propagation.propagate(nodes, graph, n_layers, method)
    return out[:n_users], out[n_users:]


def lightgcn_rows(
    params: dict, graph: Graph, users: jax.Array, *, n_layers: int, method: str = "auto"
) -> tuple[jax.Array, jax.Array]:
    """Final embeddings of the users `users` and of every item: what a training step reads.

    Equal to lightgcn_embed's rows `users` and items; the host path computes no other
    user's final embedding (advjax.models.propagation.propagate_rows).

    Args:
      params: {"user": [U, d], "item": [I, d]} layer-0 embeddings.
      graph: normalised adjacency over U + I nodes, as
        advjax.models.propagation.prepare_graph builds it for `method`.
      users: int [B] user ids.
      n_layers: number of propagation layers L.
      method: propagation path, see advjax.models.propagation.

    Returns:
      (user rows [B, d], item_emb [I, d]).
    """
    return propagation.propagate_rows(params["user"], params["item"], graph, users, n_layers,
                                      method)  # fmt: skip


def _check(cfg) -> str | None:
    if cfg.n_layers < 1:
        return (
            f"--backbone=lightgcn needs --n_layers >= 1, got {cfg.n_layers} (the paper's "
            "LightGCN cells use 2)"
        )
    return None


def _claims_legacy(saved: dict) -> bool:
    return bool(saved.get("n_layers", 0))


N_LAYERS = Setting(
    "n_layers",
    0,
    "LightGCN: propagation layers L (>= 1 with --backbone=lightgcn or vgae). Without "
    "--backbone, 0 trains MF and L >= 1 LightGCN (the flag's meaning before --backbone).",
    non_negative,
)


BACKBONE = Backbone(
    name="lightgcn",
    init_params=mf.init_params,  # layer 0 is MF's tables
    represent=lambda cfg, params, graph, method: lightgcn_embed(
        params, graph, n_layers=cfg.n_layers, method=method
    ),
    rows=lambda cfg, params, graph, users, method: lightgcn_rows(
        params, graph, users, n_layers=cfg.n_layers, method=method
    ),
    prepare_graph=lambda cfg, graph, n_users, method: propagation.prepare_graph(
        graph, n_users, cfg.n_layers, method
    ),
    depth=lambda cfg: cfg.n_layers,
    label=lambda cfg: f"LightGCN-{cfg.n_layers}",
    slug=lambda cfg: f"lightgcn{cfg.n_layers}",
    claims_legacy=_claims_legacy,
    check=_check,
    settings=(N_LAYERS,),
)
