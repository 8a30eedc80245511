"""From a configuration to what training needs: the split, device arrays, compiled
epochs, evaluators and a fresh state. The loop, the benchmarks and the tests all set
a run up through `setup_run`, so they train the same thing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax

from advjax import diagnostics, sharding
from advjax.data import SplitData
from advjax.evaluation import Evaluator, build_evaluators
from advjax.models.trained import TrainedModel
from advjax.train import streams
from advjax.train.config import TrainConfig
from advjax.train.data import TrainData, load_split, make_train_data, mesh_method
from advjax.train.epochs import EpochFns, make_epoch_fns
from advjax.train.run_diagnostics import make_diagnose
from advjax.train.state import TrainState, init_state
from advjax.train.streams import fold


@dataclasses.dataclass
class RunSetup:
    """Everything a run trains with (see setup_run)."""

    cfg: TrainConfig
    data: SplitData
    train_data: TrainData
    fns: EpochFns
    evaluators: dict[str, Evaluator]
    state: TrainState
    sample: diagnostics.Sample
    diagnose: Callable
    placement: sharding.Placement | None = None

    def place(self, state: TrainState) -> TrainState:
        """The state where the run trains: itself on one device; on a mesh padded and
        sharded (advjax/sharding.py), as the epochs and checkpoints expect it."""
        return state if self.placement is None else self.placement.place_state(state)

    def restore_target(self, state: TrainState):
        """What a checkpoint restores into: None (host arrays) on one device; on a mesh
        the placed state's abstract arrays (advjax/train/checkpoints.py)."""
        return None if self.placement is None else self.placement.abstract_state(state)

    def model(self, cf_params) -> TrainedModel:
        """The trained model at cf_params (its representations and scoring). On a mesh:
        cf_params placed or host arrays, the representations padded and laid out as
        Placement.model says."""
        if self.placement is not None:
            cf_params = self.placement.place_params(cf_params)
        return self.fns.model(cf_params, self.train_data)

    def evaluate(self, cf_params, names, model=None) -> dict[str, dict[str, float]]:
        """{name: {metric@k: value}} of the evaluators `names` at cf_params; `model`:
        the trained model there when already computed (self.model)."""
        model = model if model is not None else self.model(cf_params)
        if self.placement is not None:
            mesh, ks = self.placement.mesh, self.cfg.ks
            return {n: self.evaluators[n].evaluate_on_mesh(model, ks, mesh) for n in names}
        return {n: self.evaluators[n].evaluate(model, self.cfg.ks) for n in names}

    def host_params(self, cf_params) -> dict:
        """CF parameters in host memory (the best parameters; on a mesh, unpadded)."""
        if self.placement is None:
            return jax.device_get(cf_params)
        return self.placement.host_params(cf_params)

    def diagnostics(self, state: TrainState, model=None) -> dict[str, float]:
        """SPEC §7's diagnostics at `state` on the run's fixed sample (train/run_diagnostics.py);
        `model` as for evaluate."""
        model = model if model is not None else self.model(state.cf_params)
        values = self.diagnose(state, self.train_data, self.sample, model)
        return {name: float(value) for name, value in values.items()}


def diagnostics_sample(
    cfg: TrainConfig, data: SplitData, train_data: TrainData, state: TrainState
) -> diagnostics.Sample:
    """The run's fixed diagnostics sample, drawn from its own key stream."""
    return diagnostics.make_sample(
        data, train_data.pairs, fold(state.key, streams.DIAGNOSTICS), n_neg=cfg.n_neg
    )


def setup_run(
    cfg: TrainConfig,
    data: SplitData | None = None,
    *,
    max_batches: int = 0,
    trace_hook: Callable[[Callable], Callable] = lambda fn: fn,
    mesh: str = "",
) -> RunSetup:
    """The one setup sequence: split, train data, compiled epochs, evaluators, state,
    and the fixed sample of the diagnostics.

    Args:
      cfg: run settings.
      data: a loaded split; None loads the one cfg names (load_split).
      max_batches: cap on batches per epoch (benchmarks); 0 = whole epochs.
      trace_hook: wraps each epoch before jit; tests pass chex.assert_max_traces.
      mesh: --mesh: "" trains on one device; "auto" or "data:D,model:M" on a device
        mesh (advjax/sharding.py; the loop places the state and data there).
    """
    on_mesh = sharding.uses_mesh(mesh)
    if on_mesh:
        mesh_method(cfg.propagation)  # refuses host_csr before anything is loaded
    if data is None:
        data = load_split(cfg)
    n_samples = data.train.nnz
    if max_batches and max_batches < n_samples // cfg.batch_size:
        n_samples = max_batches * cfg.batch_size
    train_data = make_train_data(cfg, data, on_mesh=on_mesh)
    state = init_state(
        cfg, n_users=data.n_users, n_items=data.n_items, loss_data=train_data.loss_data,
        n_edges=int(train_data.graph.rows.shape[0]),
    )  # fmt: skip
    placement = sharding.make_placement(mesh, state, data.n_users, data.n_items)
    fns = make_epoch_fns(
        cfg,
        n_items=data.n_items,
        n_samples=n_samples,
        max_degree=int(data.train.degrees().max()),
        trace_hook=trace_hook,
        constrain_batch=placement.constrain_batch if placement else lambda x: x,
    )
    evaluators = build_evaluators(data, batch_size=cfg.eval_batch_size)
    sample = diagnostics_sample(cfg, data, train_data, state)
    diagnose = make_diagnose(cfg)
    if placement is not None:  # everything but the state (the loop places it) on the mesh
        train_data, sample = placement.place_data(train_data), placement.place_data(sample)
        fns = dataclasses.replace(
            fns,
            cf_epoch=placement.epoch(fns.pure_cf_epoch),
            adv_epoch=placement.epoch(fns.pure_adv_epoch),
            model=placement.model(fns.model),
        )
        diagnose = placement.diagnose(diagnose)
    return RunSetup(cfg, data, train_data, fns, evaluators, state, sample, diagnose, placement)
