"""Training: state, compiled epochs, the adversarial schedule, the outer loop."""

from advjax.train.config import TrainConfig
from advjax.train.loop import train_and_evaluate
from advjax.train.schedule import is_adversarial_epoch
from advjax.train.state import TrainState, init_state
from advjax.train.steps import make_epoch_fns

__all__ = [
    "TrainConfig",
    "TrainState",
    "init_state",
    "is_adversarial_epoch",
    "make_epoch_fns",
    "train_and_evaluate",
]
