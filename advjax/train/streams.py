"""Every random stream of a run, named in one place.

All of a run's randomness comes from `jax.random.key(seed)`, and every draw is a
function of that key and the counters the state holds, so a run restored at an epoch
boundary replays exactly (WORKSPACE.md, "Resume"). The tree of streams:

  key(seed) split in 3 (init_state):
    [0] CF parameters: the backbone's tables; folded with LOSS_PARAMS, the loss's own
        parameter groups (BC loss's popularity branch); a fitted model's initial
        parameters (iALS's factors; advjax/train/fit.py)
    [1] the adversary's parameters (AdvInfoNCE's hardness model)
    [2] the run's root key (TrainState.key), folded with
        CF_EPOCHS, then the CF epoch number          -> a CF epoch's key
        ADV_EPOCHS, then the adversarial pass number -> an adversarial pass's key
        FROZEN_NEGATIVES (--negatives=frozen)        -> one negatives key per batch
                                                        position for the whole run
        DIAGNOSTICS                                  -> the diagnostics' fixed sample;
                                                        folded with DIAGNOSTICS_HARDNESS,
                                                        the hardness read on it
  an epoch's key, folded with
        POSITIVES                       -> the epoch's positives
        NEGATIVES, then the batch index -> a batch's negatives (--negatives=fresh)
        BATCH_KEYS, then the batch index -> a batch's key (the loss draws from it)
        AUGMENT_EPOCH                   -> the augmentation's epoch_start draws
  a batch's key, folded with
        AUGMENT_BATCH                   -> the augmentation's forward draws
        BACKBONE_BATCH                  -> the backbone's training draws (VGAE's z)

Values are the ones the published runs were trained with; changing one changes every
run's draws. Streams at one level must differ (tests/train/test_streams.py).
"""

from __future__ import annotations

import jax

# The three keys init_state splits from key(seed), in split order.
INIT_SPLIT = ("cf_params", "adv_params", "root")
# Folded into the CF parameters' key.
LOSS_PARAMS = 1
# Folded into the run's root key.
CF_EPOCHS, ADV_EPOCHS, FROZEN_NEGATIVES, DIAGNOSTICS = 0, 1, 2, 3
# Folded into the diagnostics' key.
DIAGNOSTICS_HARDNESS = 1
# Folded into an epoch's key.
POSITIVES, NEGATIVES, BATCH_KEYS, AUGMENT_EPOCH = 0, 1, 2, 3
# Folded into a batch's key (the loss may draw from the batch key itself).
AUGMENT_BATCH, BACKBONE_BATCH = 7, 8


def init_keys(seed: int) -> dict[str, jax.Array]:
    """{"cf_params", "adv_params", "root"}: the keys a fresh state starts from."""
    return dict(zip(INIT_SPLIT, jax.random.split(jax.random.key(seed), 3), strict=True))


def fold(key: jax.Array, *path) -> jax.Array:
    """`key` folded with each of `path` in turn (stream numbers, counters, indices)."""
    for value in path:
        key = jax.random.fold_in(key, value)
    return key
