"""advjax/train/streams.py: the streams of one level differ, and the keys are the ones
the published runs drew from."""

import jax
import numpy as np

from advjax.train import streams


def test_streams_of_one_level_differ():
    levels = [
        (streams.CF_EPOCHS, streams.ADV_EPOCHS, streams.FROZEN_NEGATIVES, streams.DIAGNOSTICS),
        (streams.POSITIVES, streams.NEGATIVES, streams.BATCH_KEYS, streams.AUGMENT_EPOCH),
    ]
    for level in levels:
        assert len(set(level)) == len(level)
    # A batch's key is drawn from by the loss itself: the augmentation's fold is apart
    # from every epoch-level number a batch key could be confused with.
    batch_level = (streams.AUGMENT_BATCH, streams.BACKBONE_BATCH)
    assert len(set(batch_level)) == len(batch_level)
    assert not set(batch_level) & set(levels[1])


def test_init_keys_split_the_seed_in_three_and_fold_is_repeated_fold_in():
    keys = streams.init_keys(5)
    split = jax.random.split(jax.random.key(5), 3)
    for name, key in zip(streams.INIT_SPLIT, split, strict=True):
        np.testing.assert_array_equal(jax.random.key_data(keys[name]), jax.random.key_data(key))
    want = jax.random.fold_in(jax.random.fold_in(keys["root"], 0), 12)
    got = streams.fold(keys["root"], streams.CF_EPOCHS, 12)
    np.testing.assert_array_equal(jax.random.key_data(got), jax.random.key_data(want))
