"""Training: configuration, state, the step and the epochs, setup, the event loop."""

from advjax.train.config import TrainConfig
from advjax.train.data import TrainData
from advjax.train.epochs import EpochFns, make_epoch_fns
from advjax.train.loop import train_and_evaluate, train_events
from advjax.train.schedule import is_adversarial_epoch, runs_adversarial_pass
from advjax.train.setup import RunSetup, setup_run
from advjax.train.state import TrainState, init_state
from advjax.train.step import Batch, adversary_step, cf_step

__all__ = [
    "Batch",
    "EpochFns",
    "RunSetup",
    "TrainConfig",
    "TrainData",
    "TrainState",
    "adversary_step",
    "cf_step",
    "init_state",
    "is_adversarial_epoch",
    "make_epoch_fns",
    "runs_adversarial_pass",
    "setup_run",
    "train_and_evaluate",
    "train_events",
]
