"""SGL (Wu et al., SIGIR 2021), edge-dropout variant.

When a CF epoch starts, two views of the training graph are drawn: each undirected edge
kept with probability 1 - --sgl_drop_rate, each view re-normalised with its own degrees
(advjax.augmentations.edge_dropout.drop_edges; the views keep the graph's structure, dropped entries
weigh 0, so every propagation path reads them). Each step adds the InfoNCE between the
two views' LightGCN embeddings of the batch's distinct users and of its distinct positive
items (temperature --cl_tau, weight --cl_weight) to the recommendation loss, which reads
the full graph as usual. The SGL paper's code keeps exactly a (1 - rate) share of the
edges per view; here each edge is an independent draw (the same share on average).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from advjax.augmentations.contrastive import CL_SETTINGS, nodes_infonce
from advjax.augmentations.edge_dropout import drop_edges, edge_pairs
from advjax.augmentations.spec import Augmentation, AugmentInputs, AugmentOutput, EpochInputs
from advjax.models import lightgcn_rows
from advjax.models.propagation import propagate
from advjax.settings import Setting


def _a_rate(value) -> str | None:
    return None if 0 <= value < 1 else "must be in [0, 1)"


def prepare(graph, n_users: int) -> dict:
    return {"edge_pairs": edge_pairs(graph, n_users)}


def init_state(cfg, n_users: int, n_items: int, n_edges: int) -> dict:
    """Two views' weights [2, 2E]; drawn when the first epoch starts."""
    return {"view_weights": jnp.zeros((2, n_edges), jnp.float32)}


def epoch_start(cfg, state: dict, inputs: EpochInputs) -> dict:
    views = [
        drop_edges(jax.random.fold_in(inputs.key, v), inputs.graph, inputs.data["edge_pairs"],
                   cfg.sgl_drop_rate).weights
        for v in (0, 1)
    ]  # fmt: skip
    return {"view_weights": jnp.stack(views)}


def forward(cfg, inputs: AugmentInputs) -> AugmentOutput:
    params, graph, depth, method = inputs.cf_params, inputs.graph, inputs.depth, inputs.method
    user_rows, item_emb = lightgcn_rows(params, graph, inputs.users, n_layers=depth,
                                        method=method)  # fmt: skip
    nodes = jnp.concatenate([params["user"], params["item"]], axis=0)
    view_a, view_b = (
        propagate(nodes, graph._replace(weights=weights), depth, method)
        for weights in inputs.state["view_weights"]
    )
    n_users = params["user"].shape[0]
    cl = nodes_infonce(view_a[:n_users], view_b[:n_users], inputs.users, cfg.cl_tau)
    cl = cl + nodes_infonce(view_a[n_users:], view_b[n_users:], inputs.pos, cfg.cl_tau)
    return AugmentOutput(user_rows, item_emb, cfg.cl_weight * cl, {"cl_loss": cl})


AUGMENTATION = Augmentation(
    name="sgl",
    forward=forward,
    settings=(
        *CL_SETTINGS,
        Setting("sgl_drop_rate", 0.1, "SGL: share of edges dropped in each view.", _a_rate),
    ),
    prepare=prepare,
    init_state=init_state,
    epoch_start=epoch_start,
)
