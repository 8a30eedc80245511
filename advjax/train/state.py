"""TrainState: everything a run needs to continue, as one pytree."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct

from advjax.train import streams
from advjax.train.config import TrainConfig
from advjax.train.streams import fold


class TrainState(struct.PyTreeNode):
    """CF model and hardness model with their Adam states, counters and the root key.

    Attributes:
      cf_params: {"user": [U, d], "item": [I, d]} layer-0 embeddings, and the loss's
        own parameter groups (BC loss: its popularity branch "pop_user", "pop_item").
      cf_opt: optax state of the CF optimiser (state.adam: its learning rate inside).
      adv_params: the adversary's parameters, e.g. AdvInfoNCE's hardness model (empty
        dict when the loss has none).
      adv_opt: optax state of the adversary's optimiser (learning rate inside).
      step: int32 [], CF batches taken.
      epoch: int32 [], CF epochs finished.
      adv_epochs: int32 [], adversarial epochs finished.
      key: the run's root PRNG key; every draw folds counters into it.
      loss_state: what the loss carries across epochs (its spec's init_state; empty for
        most), e.g. Adap-tau's per-user temperatures and loss sums.
      aug_state: what the augmentation carries across epochs (--augment; empty for
        none), e.g. SGL's dropped graphs, NCL's clusters.
    """

    cf_params: dict
    cf_opt: optax.OptState
    adv_params: dict
    adv_opt: optax.OptState
    step: jax.Array
    epoch: jax.Array
    adv_epochs: jax.Array
    key: jax.Array
    loss_state: dict
    aug_state: dict


# Adam's constants stay constants: only its learning rate becomes state, so the
# arithmetic is optax.adam's to the bit (a traced b1 would change how XLA folds it).
_ADAM_CONSTANTS = ("b1", "b2", "eps", "eps_root", "mu_dtype", "nesterov")


def adam(learning_rate: float = 0.0) -> optax.GradientTransformation:
    """Adam whose learning rate is data in its state (optax.inject_hyperparams): `init`
    stores `learning_rate`; `update` reads the rate from the state it is given, so the
    steps call adam().update without a configuration, and runs stacked in one program
    each carry their own rate."""
    return optax.inject_hyperparams(optax.adam, static_args=_ADAM_CONSTANTS)(
        learning_rate=learning_rate
    )


def init_state(
    cfg: TrainConfig,
    *,
    n_users: int,
    n_items: int,
    loss_data: dict | None = None,
    n_edges: int = 0,
) -> TrainState:
    """Fresh state from cfg.seed: the backbone's parameters (cfg.backbone_spec), zeroed
    Adam moments.

    The loss's spec (cfg.loss_spec) adds its parameter groups (from their own key
    stream, so the main tables are those of every loss at this seed), its per-run
    state and its adversary's parameters; the augmentation (cfg.augment_spec) its state.

    Args:
      cfg: run settings.
      n_users, n_items: table sizes.
      loss_data: the arrays the loss's `prepare` returned (TrainData.loss_data).
      n_edges: entries of the training graph (2 |O+|; read by augmentations' state).
    """
    spec = cfg.loss_spec
    loss_data = loss_data or {}
    keys = streams.init_keys(cfg.seed)
    key_cf, key_adv, key_run = keys["cf_params"], keys["adv_params"], keys["root"]
    cf_params = cfg.backbone_spec.init_params(cfg, key_cf, n_users, n_items)
    if spec.init_params:
        extra = spec.init_params(cfg, fold(key_cf, streams.LOSS_PARAMS), loss_data)
        cf_params = {**cf_params, **extra}
    loss_state = spec.init_state(cfg, n_users, n_items) if spec.init_state else {}
    adversary = spec.adversary(cfg)
    adv_params = adversary.init(key_adv, n_users, n_items) if adversary else {}
    augment = cfg.augment_spec
    aug_state = {}
    if augment is not None and augment.init_state:
        aug_state = augment.init_state(cfg, n_users, n_items, n_edges)

    # Separate buffers per counter: the epoch functions donate the whole state.
    def zero():
        return jnp.zeros((), jnp.int32)

    return TrainState(
        cf_params=cf_params,
        cf_opt=adam(cfg.lr).init(cf_params),
        adv_params=adv_params,
        adv_opt=adam(cfg.lr_adv).init(adv_params),
        step=zero(),
        epoch=zero(),
        adv_epochs=zero(),
        key=key_run,
        loss_state=loss_state,
        aug_state=aug_state,
    )
