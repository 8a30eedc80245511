"""train_and_evaluate: epochs, the adversarial schedule, early stopping, the final report."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import time
from collections.abc import Callable

import jax

from advjax.data import SplitData, load_dataset
from advjax.errors import NonFiniteError, WorkdirError
from advjax.evaluation import build_evaluators
from advjax.files import write_atomically
from advjax.logs import ScalarLog
from advjax.models.propagation import resolve_method
from advjax.train.checkpoints import LoopState, RunCheckpoints
from advjax.train.config import TrainConfig, config_dict
from advjax.train.schedule import is_adversarial_epoch
from advjax.train.state import init_state
from advjax.train.steps import make_epoch_fns, make_train_data, pop_level_counts

EARLY_STOP_METRIC = "recall@20"


def _check_finite(values: dict[str, float], where: str) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            raise NonFiniteError(f"non-finite {name} ({value}) {where}; stopping")


def _hardness_label(cfg: TrainConfig) -> str:
    """ "-embed", "-mlp-reverse", "-random", ... after the loss name; "" without hardness."""
    if not cfg.uses_hardness:
        return ""
    label = f"-{cfg.hardness}" if cfg.trains_adversary else ""
    if cfg.hardness_strategy != "adversarial":
        label += f"-{cfg.hardness_strategy}"
    return label


def _format_metrics(metrics: dict[str, float], keys=("recall@20", "ndcg@20")) -> str:
    return " ".join(f"{k} {metrics[k]:.4f}" for k in keys if k in metrics)


def print_flushed(line: str) -> None:
    """Progress goes out at once, even when stdout is a file or a pipe."""
    print(line, flush=True)


def _eta(epoch_times: list[float], remaining: int) -> str:
    """Time for `remaining` more epochs at the recent pace, as 1h02m or 3m05s."""
    recent = epoch_times[-20:]
    seconds = int(remaining * sum(recent) / len(recent))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def early_stop_epoch(epochs_done: int, stale: int, *, patience: int, eval_every: int) -> int:
    """The epoch whose validation stops the run if none from now on beats the best.

    `stale` counts the validations up to `epochs_done` that did not beat the best; the
    run stops at the validation that brings it to `patience`.
    """
    next_eval = epochs_done - epochs_done % eval_every + eval_every
    return next_eval + (patience - stale - 1) * eval_every


def results_table(results: dict[str, dict[str, float]]) -> str:
    """A plain-text table: one row per evaluator, one column per metric."""
    names = list(results)
    columns = list(results[names[0]])
    width = max(len(n) for n in names)
    lines = [" " * width + " | " + " | ".join(f"{c:>14}" for c in columns)]
    for name in names:
        row = " | ".join(f"{results[name][c]:14.4f}" for c in columns)
        lines.append(f"{name:<{width}} | {row}")
    return "\n".join(lines)


_NUMERIC_PACKAGES = ("jax", "jaxlib", "numpy", "scipy", "optax", "flax")


def package_versions() -> dict[str, str]:
    """Versions of python and of the libraries whose arithmetic a run's numbers depend
    on: two runs of one configuration can differ in the last bits when these do."""
    versions = {"python": platform.python_version()}
    for name in _NUMERIC_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def train_and_evaluate(
    cfg: TrainConfig,
    workdir: str | None = None,
    *,
    data: SplitData | None = None,
    log: Callable[[str], None] = print_flushed,
    restart: bool = False,
    max_to_keep: int = 3,
    test_only: bool = False,
) -> dict:
    """Trains per cfg with early stopping on valid Recall@20 and reports every evaluator.

    Args:
      cfg: run settings.
      workdir: where checkpoints and results.json go (advjax/checkpoints.py); a workdir
        holding checkpoints of the same configuration is resumed from the newest.
        None writes nothing.
      data: a loaded split; None loads cfg.data_dir, or the embedded cfg.dataset.
      log: receives one progress line per epoch and the final table.
      restart: discard checkpoints of another configuration instead of refusing them.
      max_to_keep: newest state checkpoints kept.
      test_only: evaluate the workdir's best checkpoint on every split; no training,
        nothing written.

    Returns:
      {"best_epoch": int, evaluator name -> {metric@k: value}, "flags": cfg as a dict,
       "timing": wall-clock figures}.
    """
    start = time.perf_counter()
    if test_only and not workdir:
        raise WorkdirError("--test_only needs the --workdir of a run")
    if data is None:
        data = load_dataset(
            cfg.dataset,
            cfg.data_dir or None,
            n_users=cfg.n_users or None,
            n_items=cfg.n_items or None,
        )
    train_data = make_train_data(data, cfg.n_layers, cfg.propagation)
    fns = make_epoch_fns(
        cfg,
        n_items=data.n_items,
        n_samples=data.train.nnz,
        max_degree=int(data.train.degrees().max()),
    )
    evaluators = build_evaluators(data, batch_size=cfg.eval_batch_size)
    state = init_state(
        cfg, n_users=data.n_users, n_items=data.n_items, pop_levels=pop_level_counts(train_data)
    )
    log(
        f"{data.name}: {data.n_users} users, {data.n_items} items, {data.train.nnz} train pairs; "
        f"{'LightGCN-' + str(cfg.n_layers) if cfg.n_layers else 'MF'} + {cfg.loss}"
        f"{_hardness_label(cfg)}; {fns.n_batches} batches/epoch"
    )

    def evaluate(params, names):
        user_emb, item_emb = fns.embed(params, train_data.graph)
        return {n: evaluators[n].evaluate(user_emb, item_emb, cfg.ks) for n in names}

    ckpt = scalars = None
    loop, best_params = LoopState(), None
    if workdir:
        ckpt = RunCheckpoints(workdir, cfg, max_to_keep=max_to_keep, restart=restart, log=log)
        restored = ckpt.restore_latest(state)
        if restored is not None:
            state, loop = restored
            best_params = ckpt.restore_best(jax.device_get(state.cf_params))
            log(
                f"resumed from the checkpoint of epoch {int(state.epoch)} in {workdir} "
                f"(best valid {EARLY_STOP_METRIC} {loop.best_score:.4f} at epoch "
                f"{loop.best_epoch})"
            )

    if test_only:
        if best_params is None:
            raise WorkdirError(f"{workdir}: no best checkpoint to evaluate (--test_only)")
        report = evaluate(best_params, list(evaluators))
        log(f"best checkpoint (epoch {loop.best_epoch}) of {workdir}\n" + results_table(report))
        ckpt.close()
        return {"best_epoch": loop.best_epoch, **report}
    if workdir:
        scalars = ScalarLog(workdir, resume_epoch=int(state.epoch))

    has_valid = "valid" in evaluators
    samples_per_epoch = fns.n_batches * cfg.batch_size
    epoch_times: list[float] = []
    for epoch in range(int(state.epoch), cfg.max_epochs):
        if has_valid and loop.stale >= cfg.patience:
            break  # a resumed run that had already stopped early
        tick = time.perf_counter()
        line = f"epoch {epoch + 1:4d}"
        adversarial = cfg.trains_adversary and is_adversarial_epoch(
            epoch,
            int(state.adv_epochs),
            t_adv=cfg.t_adv,
            e_adv=cfg.e_adv,
            warm_up_epochs=cfg.warm_up_epochs,
        )
        adv_stats = None
        if adversarial:
            state, adv_stats = fns.adv_epoch(state, train_data)
            adv_stats = {k: float(v) for k, v in adv_stats.items()}
            _check_finite(adv_stats, f"in adversarial epoch before epoch {epoch + 1}")
        state, stats = fns.cf_epoch(state, train_data)
        stats = {k: float(v) for k, v in stats.items()}
        _check_finite(stats, f"in epoch {epoch + 1} (steps up to {int(state.step)})")
        seconds = time.perf_counter() - tick
        record = {
            "loss": stats["loss"],
            "epoch_s": seconds,
            "samples_per_s": samples_per_epoch / seconds,
        }
        line += f" | {seconds:6.2f}s {record['samples_per_s']:9,.0f}/s | loss {stats['loss']:.4f}"
        if cfg.uses_hardness:
            record["kl"] = stats["kl"]
            line += f" | kl {stats['kl']:.3g}"
        if adv_stats is not None:
            record.update(adv_loss=adv_stats["loss"], adv_kl=adv_stats["kl"])
            line += f" | adv #{int(state.adv_epochs)} loss {adv_stats['loss']:.4f}"
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.max_epochs:
            if has_valid:
                valid = evaluate(state.cf_params, ["valid"])["valid"]
                _check_finite(valid, f"in validation after epoch {epoch + 1}")
                record.update({f"valid/{k}": v for k, v in valid.items()})
                line += f" | valid {_format_metrics(valid)}"
                if valid[EARLY_STOP_METRIC] > loop.best_score:
                    loop = LoopState(valid[EARLY_STOP_METRIC], epoch + 1, 0)
                    # Copied to host: the next epoch donates the state's device buffers.
                    best_params = jax.device_get(state.cf_params)
                    if ckpt:
                        ckpt.save_best(epoch + 1, best_params)
                    line += " *"
                else:
                    loop.stale += 1
            if ckpt:
                ckpt.save(state, loop)
        if scalars:
            scalars.write(epoch + 1, record)
        epoch_times.append(time.perf_counter() - tick)
        if len(epoch_times) > 1:  # the first epoch's time is mostly compilation
            times, left = epoch_times[1:], cfg.max_epochs - epoch - 1
            if has_valid:
                stop = min(
                    cfg.max_epochs,
                    early_stop_epoch(
                        epoch + 1, loop.stale, patience=cfg.patience, eval_every=cfg.eval_every
                    ),
                )
                line += f" | eta {_eta(times, stop - epoch - 1)} if valid stops improving"
                line += f" (epoch {stop}), <= {_eta(times, left)}"
            else:
                line += f" | eta {_eta(times, left)}"
        log(line)
        if has_valid and loop.stale >= cfg.patience:
            log(f"early stop: {cfg.patience} validations without a better {EARLY_STOP_METRIC}")
            break
    epochs_run = int(state.epoch)
    if best_params is None:  # no validation split: report the final model
        best_params, loop.best_epoch = jax.device_get(state.cf_params), epochs_run

    report = evaluate(best_params, list(evaluators))
    for name, metrics in report.items():
        _check_finite(metrics, f"in the final {name} evaluation")
    elapsed = time.perf_counter() - start
    log(f"best epoch {loop.best_epoch} of {epochs_run}; {elapsed:.1f}s\n" + results_table(report))
    results = {
        "best_epoch": loop.best_epoch,
        **report,
        "flags": config_dict(cfg),
        # What was loaded: flags.dataset keeps its default when data_dir names the data.
        "data": {
            "name": data.name,
            "users": data.n_users,
            "items": data.n_items,
            "train_pairs": int(data.train.nnz),
        },
        "timing": {"total_s": elapsed, "epochs": epochs_run},
        "platform": {
            "device": jax.devices()[0].device_kind,
            "jax": jax.__version__,
            # What "auto" resolved to on this platform (it follows benchmark records).
            "propagation": resolve_method(cfg.propagation) if cfg.n_layers else None,
            "packages": package_versions(),
        },
    }
    if scalars:
        flat = {f"{split}/{k}": v for split, metrics in report.items() for k, v in metrics.items()}
        scalars.write(epochs_run, flat, final=True)
        scalars.close()
    if ckpt:
        ckpt.close()
        path = os.path.join(workdir, "results.json")
        write_atomically(path, json.dumps(results, indent=2))
        log(f"wrote {path}")
    return results
