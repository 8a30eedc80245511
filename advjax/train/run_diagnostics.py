"""The diagnostics of SPEC §7 at a validation: representation geometry and hardness.

Computed on a fixed sample (advjax.diagnostics.Sample, built once per run from its own
random stream), so successive values follow the model, not the draw; they are logged
(metrics.jsonl, TensorBoard) and never read by training or selection.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from advjax import diagnostics
from advjax.models.trained import TrainedModel
from advjax.scores import l2_normalize
from advjax.train import streams
from advjax.train.config import TrainConfig
from advjax.train.data import TrainData
from advjax.train.state import TrainState
from advjax.train.step import Batch, loss_inputs
from advjax.train.streams import fold


def make_diagnose(cfg: TrainConfig) -> Callable:
    """A jitted (state, data, sample, model) -> {name: []} of

      "repr/align", "repr/uniform" (users' and items' averaged), and, for a loss that
      weights its negatives (its spec's `hardness`), "hardness/kl_u_p", "kl_p_u",
      "delta_std", "pop_corr", "fn_rate" (advjax.diagnostics.hardness_stats).

    model: the TrainedModel at state.cf_params (the one the validation evaluated, so a
    validation propagates once); its representations are read on the unit sphere.
    """
    spec = cfg.loss_spec

    def diagnose(state: TrainState, data: TrainData, sample: diagnostics.Sample,
                 model: TrainedModel):  # fmt: skip
        user_hat, item_hat = l2_normalize(model.users), l2_normalize(model.items)
        values = {
            "repr/align": diagnostics.alignment(user_hat[sample.users], item_hat[sample.pos]),
            "repr/uniform": (
                diagnostics.uniformity(user_hat[sample.user_set])
                + diagnostics.uniformity(item_hat[sample.items])
            )
            / 2,
        }
        if spec.hardness:
            key = fold(state.key, streams.DIAGNOSTICS, streams.DIAGNOSTICS_HARDNESS)
            batch = Batch(sample.users, sample.pos, sample.negs, key)
            inputs = loss_inputs(
                state, data, batch, user_hat[sample.users], item_hat, state.cf_params,
                state.adv_params,
            )  # fmt: skip
            stats = diagnostics.hardness_stats(spec.hardness(cfg, inputs), sample)
            values.update({f"hardness/{name}": value for name, value in stats.items()})
        return values

    return jax.jit(diagnose)
