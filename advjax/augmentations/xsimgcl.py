"""XSimGCL (Yu et al., TKDE 2023): noise between LightGCN's layers as the augmentation.

One forward pass serves both terms: at every layer l = 1..L the propagated embedding
gets uniform noise of norm eps in the direction of its own sign,
  e_l <- e_l + eps * sign(e_l) * normalize(U[0, 1)^d),
the recommendation loss reads the layer mean of the perturbed layers (this project's
LightGCN mean over layers 0..L; the XSimGCL paper's code averages layers 1..L), and the
contrastive view is the perturbed layer --xsimgcl_layer_cl. The contrastive term is
InfoNCE between the final and the view embeddings of the batch's distinct users and of
its distinct positive items (temperature --cl_tau), weighted by --cl_weight.
Evaluation reads the clean propagation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from advjax.augmentations.contrastive import CL_SETTINGS, nodes_infonce
from advjax.augmentations.spec import Augmentation, AugmentInputs, AugmentOutput
from advjax.models.propagation import propagate_layers
from advjax.scores import l2_normalize
from advjax.settings import Setting, non_negative


def sign_noise(key: jax.Array, layer: jax.Array, eps) -> jax.Array:
    """layer + eps * sign(layer) * normalize(U[0, 1)), row-wise; layer [N, d]."""
    noise = l2_normalize(jax.random.uniform(key, layer.shape, layer.dtype))
    return layer + eps * jnp.sign(layer) * noise


def forward(cfg, inputs: AugmentInputs) -> AugmentOutput:
    params, n_users = inputs.cf_params, inputs.cf_params["user"].shape[0]
    nodes = jnp.concatenate([params["user"], params["item"]], axis=0)

    def perturb(number, layer):
        return sign_noise(jax.random.fold_in(inputs.key, number), layer, cfg.xsimgcl_eps)

    layers = propagate_layers(nodes, inputs.graph, inputs.depth, inputs.method, perturb)
    final = sum(layers) / len(layers)
    view = layers[cfg.xsimgcl_layer_cl]
    cl = nodes_infonce(final[:n_users], view[:n_users], inputs.users, cfg.cl_tau)
    cl = cl + nodes_infonce(final[n_users:], view[n_users:], inputs.pos, cfg.cl_tau)
    return AugmentOutput(
        user_rows=final[:n_users][inputs.users],
        item_emb=final[n_users:],
        loss=cfg.cl_weight * cl,
        diagnostics={"cl_loss": cl},
    )


def _check(cfg, depth: int) -> str | None:
    if cfg.xsimgcl_layer_cl > depth:
        return f"xsimgcl_layer_cl {cfg.xsimgcl_layer_cl} exceeds n_layers {depth}"
    return None


def _a_layer(value) -> str | None:
    return None if value >= 1 else "must be >= 1 (a propagated layer)"


AUGMENTATION = Augmentation(
    name="xsimgcl",
    forward=forward,
    settings=(
        *CL_SETTINGS,
        Setting(
            "xsimgcl_eps", 0.2, "XSimGCL: norm of the noise added at each layer.", non_negative
        ),
        Setting(
            "xsimgcl_layer_cl",
            1,
            "XSimGCL: the layer whose perturbed embedding is the contrastive view (1..n_layers).",
            _a_layer,
        ),
    ),  # fmt: skip
    check=_check,
)
