"""Matrix factorisation: plain user and item ID embeddings (SPEC §1).

The representations are the layer-0 tables themselves; MF reads no graph and has no
layers. `--backbone=mf`, also what a configuration without --backbone and with
--n_layers=0 (the default) trains.
"""

from __future__ import annotations

import jax

from advjax.initializers import init_embeddings
from advjax.models.backbone import Backbone


def init_params(cfg, key: jax.Array, n_users: int, n_items: int) -> dict:
    """Xavier-normal tables {"user": [U, emb_dim], "item": [I, emb_dim]}."""
    return init_embeddings(key, n_users, n_items, cfg.emb_dim)


def represent(cfg, params: dict, graph, method: str) -> tuple[jax.Array, jax.Array]:
    """(user [U, d], item [I, d]): the tables."""
    return params["user"], params["item"]


def _claims_legacy(saved: dict) -> bool:
    return not saved.get("n_layers", 0)


BACKBONE = Backbone(
    name="mf",
    init_params=init_params,
    represent=represent,  # a step's rows: the default gather of these tables
    label=lambda cfg: "MF",
    slug=lambda cfg: "mf",
    claims_legacy=_claims_legacy,
)
