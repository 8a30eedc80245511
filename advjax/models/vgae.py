"""VGAE for collaborative filtering: a variational LightGCN encoder (the paper's Table 6
rows "VGAE + InfoNCE / AdvInfoNCE"; Kipf & Welling 2016, "Variational Graph Auto-Encoders",
in an adapted version the paper does not publish).

No recommender code of it is public, so this module states the design it implements:

  encoder   mu = LightGCN's propagation of the layer-0 tables (advjax.models.lightgcn,
            --n_layers layers); log sigma = min(mu W + b, 10), a linear head on the
            propagated embedding (parameter group "vgae_sigma": W [d, d], b [d]; the
            clamp at 10 is PyTorch Geometric's MAX_LOGSTD).
  training  a step's rows are samples z = mu + eps * exp(log sigma), eps ~ N(0, I) drawn
            from the batch's key (streams.BACKBONE_BATCH), for the batch's users and
            every item; the loss (--loss: InfoNCE, AdvInfoNCE, ...) reads the cosines of z
            as it reads any backbone's rows.
  KL term   --vgae_beta x the mean over those nodes (the batch's users, counted as often
            as they occur, and every item) of KL(N(mu, sigma^2) || N(0, I)) =
            -1/2 sum_d (1 + 2 log sigma - mu^2 - sigma^2), PyTorch Geometric's
            VGAE.kl_loss over the nodes a step computes.
  scoring   by mu (`represent`: LightGCN's representations), cosine like every SGD
            backbone: evaluation, the adversary's passes and the diagnostics read mu.

The head starts at W = 0 and b = --vgae_log_sigma_init, so every node starts with the
same small noise scale, whatever the embedding's scale. The rows "VGAE" alone (its own
reconstruction loss) and any --augment are not offered: the augmentations build their
own training rows, which this backbone's sampling would have to replace (TrainConfig
refuses --augment with any backbone that samples).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from advjax.models import lightgcn, mf
from advjax.models.backbone import Backbone
from advjax.settings import Setting, non_negative

MAX_LOG_SIGMA = 10.0  # PyTorch Geometric's MAX_LOGSTD

SETTINGS = (
    lightgcn.N_LAYERS,
    Setting(
        "vgae_beta",
        1e-3,
        "VGAE: weight of the KL term (mean over a step's nodes of KL(q(z) || N(0, I))).",
        non_negative,
    ),
    Setting(
        "vgae_log_sigma_init",
        -4.0,
        "VGAE: the log sigma head's initial bias (its weights start at 0), so every node's "
        "initial noise scale is exp of it.",
        lambda value: None if value < MAX_LOG_SIGMA else f"must be < {MAX_LOG_SIGMA}",
    ),
)


def init_params(cfg, key: jax.Array, n_users: int, n_items: int) -> dict:
    """MF's Xavier-normal tables and the log sigma head {"w": [d, d] zeros, "b": [d]}."""
    params = mf.init_params(cfg, key, n_users, n_items)
    d = cfg.emb_dim
    params["vgae_sigma"] = {
        "w": jnp.zeros((d, d), jnp.float32),
        "b": jnp.full((d,), cfg.vgae_log_sigma_init, jnp.float32),
    }
    return params


def log_sigma(head: dict, mu: jax.Array) -> jax.Array:
    """[n, d] min(mu W + b, 10) of the propagated embeddings mu [n, d]."""
    return jnp.minimum(mu @ head["w"] + head["b"], MAX_LOG_SIGMA)


def kl_per_node(mu: jax.Array, log_sig: jax.Array) -> jax.Array:
    """[n] KL(N(mu, diag sigma^2) || N(0, I)) = -1/2 sum_d (1 + 2 log sigma - mu^2 - sigma^2).

    Args:
      mu: [n, d] means.
      log_sig: [n, d] log standard deviations.
    """
    return -0.5 * jnp.sum(1 + 2 * log_sig - mu**2 - jnp.exp(2 * log_sig), axis=-1)


def reparameterize(mu: jax.Array, log_sig: jax.Array, key: jax.Array) -> jax.Array:
    """[n, d] z = mu + eps * exp(log sigma), eps ~ N(0, I) from `key`."""
    return mu + jax.random.normal(key, mu.shape, mu.dtype) * jnp.exp(log_sig)


def sample(cfg, params: dict, user_mu: jax.Array, item_mu: jax.Array, key: jax.Array):
    """A training step's rows: samples of the batch's users and of every item, and the
    KL term.

    Args:
      cfg: reads vgae_beta.
      params: the CF parameters (reads "vgae_sigma").
      user_mu: [B, d] the batch's users' propagated embeddings.
      item_mu: [I, d] every item's.
      key: the batch's key for this backbone's draws.

    Returns:
      (user z [B, d], item z [I, d], [] vgae_beta x the mean KL over the B + I nodes,
      {"kl": [] that mean}).
    """
    head = params["vgae_sigma"]
    user_key, item_key = jax.random.split(key)
    user_log_sig, item_log_sig = log_sigma(head, user_mu), log_sigma(head, item_mu)
    kl = jnp.concatenate([kl_per_node(user_mu, user_log_sig), kl_per_node(item_mu, item_log_sig)])
    mean_kl = jnp.mean(kl)
    return (
        reparameterize(user_mu, user_log_sig, user_key),
        reparameterize(item_mu, item_log_sig, item_key),
        cfg.vgae_beta * mean_kl,
        {"kl": mean_kl},
    )


def _check(cfg) -> str | None:
    if cfg.n_layers < 1:
        return f"--backbone=vgae needs --n_layers >= 1 (its LightGCN encoder), got {cfg.n_layers}"
    return None


BACKBONE = Backbone(
    name="vgae",
    init_params=init_params,
    # mu, a step's rows of it and the graph operand: LightGCN's.
    represent=lightgcn.BACKBONE.represent,
    rows=lightgcn.BACKBONE.rows,
    prepare_graph=lightgcn.BACKBONE.prepare_graph,
    sample=sample,
    depth=lightgcn.BACKBONE.depth,
    label=lambda cfg: f"VGAE-{cfg.n_layers}",
    slug=lambda cfg: f"vgae{cfg.n_layers}",
    check=_check,
    settings=SETTINGS,
)
