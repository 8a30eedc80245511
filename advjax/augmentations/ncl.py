"""NCL (Lin et al., WWW 2022): neighbourhood-enriched contrast, structural and semantic.

Two contrastive terms beside the recommendation loss, both from --ncl_start_epoch on:
  structural: a node's embedding at layer 2 (its even-layer, same-type neighbourhood)
    against the layer-0 embeddings of the batch's distinct nodes of its type, its own
    the positive (SPEC §6: the batch's nodes as negatives; the NCL code takes every
    node of the type); over the batch's users and (weighted --ncl_alpha) its positive
    items; weight --cl_weight, temperature --cl_tau.
  prototype: a node's layer-0 embedding against the centroids of a k-means of its
    type's layer-0 embeddings (re-fitted when each CF epoch starts, in JAX:
    advjax.augmentations.kmeans; --ncl_clusters, capped at the number of nodes), its own
    cluster's centroid the positive; weight --ncl_proto_weight.
The recommendation loss reads the usual layer mean, from the same forward pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from advjax.augmentations.contrastive import CL_SETTINGS, nodes_infonce, target_infonce
from advjax.augmentations.kmeans import effective_clusters, kmeans
from advjax.augmentations.spec import Augmentation, AugmentInputs, AugmentOutput, EpochInputs
from advjax.models.propagation import propagate_layers
from advjax.settings import Setting, non_negative, positive

# Lloyd iterations per re-fit (the NCL code runs faiss' k-means with its defaults).
KMEANS_ITERS = 20


def _clusters(cfg, n_rows: int) -> int:
    return effective_clusters(cfg.ncl_clusters, n_rows)


def init_state(cfg, n_users: int, n_items: int, n_edges: int) -> dict:
    """Each type's centroids [K, d] and assignments [N]; fitted when epochs start."""
    state = {}
    for name, n in (("user", n_users), ("item", n_items)):
        state[f"{name}_centroids"] = jnp.zeros((_clusters(cfg, n), cfg.emb_dim), jnp.float32)
        state[f"{name}_assign"] = jnp.zeros((n,), jnp.int32)
    return state


def epoch_start(cfg, state: dict, inputs: EpochInputs) -> dict:
    def fit(_):
        out = {}
        for offset, name in enumerate(("user", "item")):
            table = inputs.cf_params[name]
            k = _clusters(cfg, table.shape[0])
            fitted = kmeans(jax.random.fold_in(inputs.key, offset), table, k, KMEANS_ITERS)
            out[f"{name}_centroids"], out[f"{name}_assign"] = fitted.centroids, fitted.assign
        return out

    # Before the prototype term starts, the clusters are not read: skip the fit.
    return jax.lax.cond(inputs.epoch >= cfg.ncl_start_epoch, fit, lambda _: state, None)


def forward(cfg, inputs: AugmentInputs) -> AugmentOutput:
    params, n_users = inputs.cf_params, inputs.cf_params["user"].shape[0]
    nodes = jnp.concatenate([params["user"], params["item"]], axis=0)
    layers = propagate_layers(nodes, inputs.graph, inputs.depth, inputs.method)
    final = sum(layers) / len(layers)
    ego, context = layers[0], layers[2]
    users, items = inputs.users, inputs.pos
    structural = nodes_infonce(context[:n_users], ego[:n_users], users, cfg.cl_tau)
    structural = structural + cfg.ncl_alpha * nodes_infonce(
        context[n_users:], ego[n_users:], items, cfg.cl_tau
    )
    state = inputs.state
    prototype = target_infonce(
        ego[:n_users][users], state["user_centroids"], state["user_assign"][users], cfg.cl_tau
    ) + target_infonce(
        ego[n_users:][items], state["item_centroids"], state["item_assign"][items], cfg.cl_tau
    )
    on = (inputs.epoch >= cfg.ncl_start_epoch).astype(final.dtype)
    loss = on * (cfg.cl_weight * structural + cfg.ncl_proto_weight * prototype)
    return AugmentOutput(
        user_rows=final[:n_users][users],
        item_emb=final[n_users:],
        loss=loss,
        diagnostics={"cl_loss": structural, "proto_loss": prototype},
    )


AUGMENTATION = Augmentation(
    name="ncl",
    forward=forward,
    settings=(
        *CL_SETTINGS,
        Setting("ncl_proto_weight", 1e-7, "NCL: weight of the prototype term.", non_negative),
        Setting("ncl_alpha", 1.0, "NCL: weight of the items' structural term.", non_negative),
        Setting(
            "ncl_clusters",
            2000,
            "NCL: k-means clusters per node type (at most the number of nodes).",
            positive,
        ),
        Setting(
            "ncl_start_epoch",
            20,
            "NCL: first epoch (0-based) with the contrastive "
            "terms; the clusters are fitted from then on.",
            non_negative,
        ),
    ),  # fmt: skip
    init_state=init_state,
    epoch_start=epoch_start,
    check=lambda cfg, depth: (
        None if depth >= 2 else "--augment=ncl contrasts layer 2 with layer 0: needs n_layers >= 2"
    ),
)
