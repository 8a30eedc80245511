"""Peer CPU libraries beside advjax on one split (issue 35, item 6; --seeds: item 1).

  python -m benchmarks.peers                     # Yahoo!R3, every system, 2 repetitions
  python -m benchmarks.peers --systems=implicit_als,ials --reps=1
  python -m benchmarks.peers --seeds=5           # iALS and implicit's ALS, seeds 1..5
  python -m benchmarks.peers --data_dir= --dataset=coat --configs=coat \\
      --flagfiles=ials:/tmp/coat_ials.flags --reps=1        # a smoke run on Coat

Systems (SYSTEMS), each fitted in a fresh subprocess (peak memory is per process; no
compiled code or warm cache is shared), the systems alternating within a repetition:

  implicit_als      implicit.cpu.als.AlternatingLeastSquares (implicit 0.7) at the iALS
                    flagfile's objective (`implicit_als_settings`: factors = emb_dim,
                    alpha = (1 + ials_alpha) / w0, regularization = ials_reg / w0, the
                    same solver); validated every eval_every iterations, stopped after
                    patience validations without a better valid Recall@20, at most
                    max_epochs iterations: the flagfile's own schedule, advjax's
                    EarlyStopping.
  implicit_bpr      implicit.cpu.bpr.BayesianPersonalizedRanking at its defaults
                    (learning_rate 0.01, regularization 0.01) with factors = --bpr_factors
                    (64, advjax's emb_dim); iterations chosen by validation every
                    --bpr_eval_every iterations, patience --bpr_patience, at most
                    --bpr_max_iterations (its default 100 iterations is not a choice).
  recbole_lightgcn  RecBole's LightGCN (benchmarks/peers_recbole.py, run by
                    --recbole_python, an environment of its own): its defaults (BPR loss)
                    at the LightGCN flagfile's emb_dim, n_layers, eval_every (RecBole's
                    eval_step), patience (stopping_step) and max_epochs. Where that
                    interpreter or RecBole is missing or fails, its rows say
                    "not run: <reason>" and the benchmark goes on (so do implicit's
                    rows where implicit is not installed).
  ials, ease, mf_infonce, lightgcn_infonce
                    advjax from experiments/configs/{--configs}_{system}.flags
                    (--flagfiles=SYSTEM:PATH names another), read when the child starts.

Every system trains on the same split (--data_dir, else the embedded --dataset; it
replaces the flagfiles' own) and every number of quality comes from advjax's evaluator
under SPEC §4's protocol (advjax.evaluation.build_evaluators): a peer's user and item
factors become a TrainedModel(users, items, scoring="dot"), the score implicit and
RecBole rank by; the test numbers are those of the best validation.

What a child measures:
  fit s          training seconds, validation excluded: the sum of each iteration's
                 time. advjax: EpochTrained.seconds, what metrics.jsonl records as
                 epoch_s (its first epoch includes XLA's compilation: the children run
                 without the persistent compilation cache); implicit: the seconds its
                 fit callback receives per iteration; RecBole: its `_train_epoch`.
  s to target    the training seconds up to the first validation whose valid Recall@20
                 reaches --target_recall ("-": never); the record also keeps the wall
                 time to it, validations included.
  s/iter         the median iteration (sweep, epoch) after the first, so compilation
                 and warm-up stay out; an EASE fit is its one solve.
  peak RSS       the child's VmHWM (benchmarks.record.peak_rss_mb; getrusage's
                 ru_maxrss where /proc is absent), MiB.
Threads: implicit gets num_threads = --threads (default: the CPUs this process may run
on), with its BLAS pinned to one thread (OPENBLAS_NUM_THREADS=1 and threadpoolctl, as
implicit asks); RecBole gets torch.set_num_threads(--threads); XLA uses those CPUs.

The parent prints a table, the ratio of advjax's iALS sweep to implicit's ALS iteration
(their medians over the repetitions of this run: the issue's target is a sweep no
slower), the machine, and writes benchmarks/results/DATE-PLATFORM-peers[-seeds].json
atomically. --seeds=N fits advjax's iALS and implicit's ALS at the same hyperparameters
for seeds 1..N each and reports both systems' test Recall@20 / NDCG@20 mean ± std.

Peers are imported only inside the child functions: advjax never imports them, and
this module imports without them (tests/benchmarks/test_peers.py).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from advjax.data import SplitData, load_dataset
from advjax.errors import ConfigError, DataError, check_finite
from advjax.evaluation import Evaluator, build_evaluators
from advjax.files import write_atomically
from advjax.metrics import SELECTION_METRIC
from advjax.models.trained import TrainedModel
from advjax.provenance import git_commit, machine_info, package_versions
from advjax.train import events
from advjax.train.config import TrainConfig
from advjax.train.early_stopping import EarlyStopping
from benchmarks.record import peak_rss_mb
from benchmarks.run import RECORD_PREFIX, spawn_record
from experiments import cli
from experiments.report import mean_std_text
from experiments.run import read_flagfile

REPO = pathlib.Path(__file__).resolve().parents[1]
KS = (20,)
TEST_SPLIT = "test_ood"


@dataclasses.dataclass(frozen=True)
class System:
    """A benchmarked system: who fits it and which flagfile it reads (a stem of
    experiments/configs/{--configs}_STEM.flags; "" for none)."""

    library: str  # "advjax", "implicit" or "recbole"
    config: str = ""


SYSTEMS = {
    "implicit_als": System("implicit", "ials"),
    "implicit_bpr": System("implicit"),
    "recbole_lightgcn": System("recbole", "lightgcn_infonce"),
    "ials": System("advjax", "ials"),
    "ease": System("advjax", "ease"),
    "mf_infonce": System("advjax", "mf_infonce"),
    "lightgcn_infonce": System("advjax", "lightgcn_infonce"),
}
SEEDED = ("ials", "implicit_als")  # --seeds: issue 35's item 1


def define_flags() -> None:
    """The CLI's flags; only when run as a program (the tests import this module)."""
    flags.DEFINE_list("systems", [], f"Systems to fit (default all: {', '.join(SYSTEMS)}).")
    flags.DEFINE_integer("reps", 2, "Repetitions; each fits every system once, in turn.")
    flags.DEFINE_integer(
        "seeds", 0, f"N > 0: fit {' and '.join(SEEDED)} for seeds 1..N instead (mean ± std)."
    )
    flags.DEFINE_float("target_recall", 0.40, "The valid Recall@20 whose first reaching is timed.")
    # --data_dir and --dataset are TrainConfig's flags (experiments.run defines them all):
    # the split every system fits, replacing the flagfiles' (relative: to the repository).
    flags.FLAGS.set_default("data_dir", "../shared/data/yahoo.new")
    flags.DEFINE_string("configs", "yahoo", "Flagfile prefix: experiments/configs/PREFIX_*.")
    flags.DEFINE_list("flagfiles", [], "SYSTEM:PATH pairs replacing a system's flagfile.")
    flags.DEFINE_integer(
        "iterations_cap", 0, "Cap on every iterative system's iterations (0: their own)."
    )
    flags.DEFINE_integer("bpr_factors", 64, "implicit BPR: factors (advjax's emb_dim).")
    flags.DEFINE_integer("bpr_eval_every", 5, "implicit BPR: iterations between validations.")
    flags.DEFINE_integer("bpr_patience", 10, "implicit BPR: validations without a better one.")
    flags.DEFINE_integer("bpr_max_iterations", 500, "implicit BPR: most iterations.")
    flags.DEFINE_integer(
        "threads", len(os.sched_getaffinity(0)), "Threads of implicit and RecBole."
    )
    flags.DEFINE_string(
        "recbole_python", "../peers-venv/bin/python",
        "Interpreter with RecBole and torch (benchmarks/recbole-requirements.txt).",
    )  # fmt: skip
    flags.DEFINE_string("json", "", "Where the JSON record goes (default benchmarks/results/).")
    flags.DEFINE_string("child", "", "Internal: fit one SYSTEM and print its record.")
    flags.DEFINE_integer("child_seed", 0, "Internal: the child's seed (0: the flagfile's).")
    flags.DEFINE_string("snapshots", "", "Internal: RecBole's snapshot directory to evaluate.")
    flags.DEFINE_string("recbole_record", "", "Internal: RecBole's record (a JSON file).")


FLAGS = flags.FLAGS


# ---------------------------------------------------------------------------------------
# The pure parts: hyperparameters, evaluation of factors, a fit's record.


def implicit_als_settings(cfg: TrainConfig) -> dict:
    """implicit's AlternatingLeastSquares arguments with the minimisers of cfg's iALS.

    implicit 0.7 (implicit/cpu/_als.pyx) solves, per row, (YᵀY + reg I + Σ_i (C_ui - 1)
    y_i y_iᵀ) x_u = Σ_i C_ui y_i with C_ui = alpha on observed pairs and 1 elsewhere:
    advjax.models.ials's objective with c = alpha, w0 = 1, lam = reg, nu = 0. Its
    regularization is that plain lam, scaled by nothing (no count of interactions; the
    CPU and GPU models alike). Dividing advjax's objective by w0 keeps its minimisers,
    so c = 1 + ials_alpha, w0, lam become alpha = c / w0, regularization = lam / w0.

    Raises:
      ConfigError: cfg has nu != 0 (implicit has no frequency-scaled regularisation).
    """
    if cfg.ials_reg_exponent != 0:
        raise ConfigError(
            f"implicit has no frequency-scaled regularisation (--ials_reg_exponent="
            f"{cfg.ials_reg_exponent} here): its ALS cannot fit the same objective"
        )
    w0 = cfg.ials_unobserved_weight
    return {
        "factors": cfg.emb_dim,
        "alpha": (1.0 + cfg.ials_alpha) / w0,
        "regularization": cfg.ials_reg / w0,
        "use_cg": cfg.ials_solver == "cg",
        "cg_steps": cfg.ials_cg_steps,
    }


def evaluate_factors(
    evaluators: dict[str, Evaluator], users, items, splits=None, ks=KS
) -> dict[str, dict[str, float]]:
    """advjax's metrics of scores users @ itemsᵀ (a peer's factors).

    Args:
      evaluators: build_evaluators' evaluators of the split.
      users: [U, d] user factors; items: [I, d] item factors (NumPy or JAX).
      splits: the evaluators to run (None: all).
      ks: list lengths.

    Returns:
      {split: {"recall@20": ..., "ndcg@20": ..., ...}}.
    """
    model = TrainedModel(
        jnp.asarray(users, jnp.float32), jnp.asarray(items, jnp.float32), scoring="dot"
    )
    return {
        name: ev.evaluate(model, ks)
        for name, ev in evaluators.items()
        if splits is None or name in splits
    }


class FitLog:
    """What a child records of one fit as it goes: each iteration's training seconds, the
    validations (advjax's EarlyStopping, so the same patience rule for every system),
    and when valid Recall@20 first reached the target."""

    def __init__(self, target: float, patience: int = 1, eval_every: int = 1):
        self.target = target
        self.seconds: list[float] = []
        self.curve: list[list[float]] = []  # [iteration, valid Recall@20]
        self.stopping = EarlyStopping(patience=patience, eval_every=eval_every)
        self.start = time.perf_counter()
        self.to_target: dict | None = None

    def trained(self, seconds: float) -> None:
        self.seconds.append(float(seconds))

    def validated(self, iteration: int, valid: dict[str, float]) -> bool:
        """Records a validation; whether it is the best so far."""
        check_finite(valid, f"in the validation after iteration {iteration}")
        score = valid[SELECTION_METRIC]
        self.curve.append([iteration, score])
        self.stopping = self.stopping.update(iteration, score)
        if self.to_target is None and score >= self.target:
            self.to_target = {
                "iteration": iteration,
                "train_s": sum(self.seconds),
                "wall_s": time.perf_counter() - self.start,
            }
        return self.stopping.improved_at(iteration)

    def record(self) -> dict:
        steady = self.seconds[1:] or self.seconds
        return {
            "fit_s": sum(self.seconds),
            "first_iteration_s": self.seconds[0] if self.seconds else None,
            "iteration_s": statistics.median(steady) if steady else None,
            "iterations": len(self.seconds),
            "best_iteration": self.stopping.best_epoch,
            "to_target_s": self.to_target["train_s"] if self.to_target else None,
            "to_target": self.to_target,
            "valid_curve": self.curve,
        }


# ---------------------------------------------------------------------------------------
# Configuration: which flagfile, which data.


def data_args() -> dict:
    """The benchmark's split as TrainConfig fields (every system reads the same)."""
    data_dir = FLAGS.data_dir
    if data_dir and not os.path.isabs(data_dir):
        data_dir = str(REPO / data_dir)
    return {"data_dir": data_dir, "dataset": FLAGS.dataset}


def flagfile_paths() -> dict[str, str]:
    """config stem -> flagfile: experiments/configs/{--configs}_STEM.flags unless
    --flagfile names another for a system reading that stem."""
    named = {}
    for pair in FLAGS.flagfiles:
        system, sep, path = pair.partition(":")
        if not sep or system not in SYSTEMS or not SYSTEMS[system].config:
            raise ConfigError(f"--flagfiles={pair}: want SYSTEM:PATH (a system with a flagfile)")
        named[SYSTEMS[system].config] = path
    stems = {s.config for s in SYSTEMS.values() if s.config}
    return {
        stem: named.get(stem, f"experiments/configs/{FLAGS.configs}_{stem}.flags") for stem in stems
    }


def system_config(system: str, seed: int = 0) -> TrainConfig:
    """The system's flagfile as a TrainConfig on the benchmark's split, --iterations_cap and
    the seed applied."""
    path = flagfile_paths()[SYSTEMS[system].config]
    cfg = dataclasses.replace(read_flagfile(str(REPO / path)), **data_args())
    if FLAGS.iterations_cap:
        cfg = dataclasses.replace(cfg, max_epochs=min(cfg.max_epochs, FLAGS.iterations_cap))
    return dataclasses.replace(cfg, seed=seed) if seed else cfg


def check_inputs(systems: list[str]) -> None:
    """One-line errors before anything runs: unknown systems, missing flagfiles or data."""
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise ConfigError(f"unknown system {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    args = data_args()
    if args["data_dir"] and not os.path.isdir(args["data_dir"]):
        raise DataError(f"--data_dir={FLAGS.data_dir}: no such directory")
    paths = flagfile_paths()
    for system in systems:
        stem = SYSTEMS[system].config
        if stem and not (REPO / paths[stem]).is_file():
            raise ConfigError(
                f"{paths[stem]}: no such flagfile (system {system}; "
                f"--flagfiles={system}:PATH names another)"
            )
        if stem:
            system_config(system)  # a bad flag in it: its one-line error now


def selected_systems() -> list[str]:
    if FLAGS.seeds > 0:
        systems = FLAGS.systems or list(SEEDED)
        others = [s for s in systems if s not in SEEDED and s in SYSTEMS]
        if others:
            raise ConfigError(f"--seeds fits {' and '.join(SEEDED)} only, not {', '.join(others)}")
        return systems
    return FLAGS.systems or list(SYSTEMS)


# ---------------------------------------------------------------------------------------
# Children: one system fitted in this process.


def _load() -> SplitData:
    args = data_args()
    return load_dataset(args["dataset"], args["data_dir"] or None)


def _user_items(data: SplitData):
    """The training pairs as the float32 CSR matrix implicit reads."""
    import scipy.sparse

    train = data.train
    ones = np.ones(train.nnz, np.float32)
    return scipy.sparse.csr_matrix(
        (ones, train.items, train.indptr), shape=(data.n_users, data.n_items)
    )


class _OutOfPatience(Exception):
    """Raised from implicit's fit callback: the validations ran out of patience."""


def _fit_implicit(model, data: SplitData, log: FitLog, max_iterations: int, eval_every: int):
    """Fits an implicit model iteration by iteration through its fit callback, validating
    with advjax's evaluator every `eval_every` iterations; returns the best validation's
    (user, item) factors and advjax's metrics of every split there."""
    from threadpoolctl import threadpool_limits

    evaluators = build_evaluators(data)
    best = {}

    def callback(iteration, seconds, *_):
        log.trained(seconds)  # the iteration alone: implicit timed it before calling
        done = iteration + 1
        if done % eval_every and done != max_iterations:
            return
        users, items = model.user_factors, model.item_factors
        valid = evaluate_factors(evaluators, users, items, ("valid",))["valid"]
        if log.validated(done, valid):
            best.update(users=users.copy(), items=items.copy())
        print(f"iteration {done}: valid Recall@20 {valid[SELECTION_METRIC]:.4f}", flush=True)
        if log.stopping.stopped:
            raise _OutOfPatience

    model.iterations = max_iterations
    log.start = time.perf_counter()
    with threadpool_limits(1, "blas"):
        try:
            model.fit(_user_items(data), show_progress=False, callback=callback)
        except _OutOfPatience:
            pass
    return evaluate_factors(evaluators, best["users"], best["items"])


def _schedule(eval_every: int, patience: int, most: int) -> str:
    return f"early stopping: eval_every {eval_every}, patience {patience}, at most {most}"


def child_implicit_als(seed: int) -> dict:
    from implicit.cpu.als import AlternatingLeastSquares

    cfg = system_config("implicit_als", seed)
    settings = implicit_als_settings(cfg)
    cg_steps = settings.pop("cg_steps")
    data = _load()
    model = AlternatingLeastSquares(**settings, random_state=cfg.seed, num_threads=FLAGS.threads)
    model.cg_steps = cg_steps
    log = FitLog(FLAGS.target_recall, cfg.patience, cfg.eval_every)
    metrics = _fit_implicit(model, data, log, cfg.max_epochs, cfg.eval_every)
    schedule = _schedule(cfg.eval_every, cfg.patience, cfg.max_epochs)
    settings |= {"cg_steps": cg_steps, "seed": cfg.seed, "iterations": schedule}
    return {**log.record(), "metrics": metrics, "settings": settings}


def child_implicit_bpr(seed: int) -> dict:
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    data = _load()
    model = BayesianPersonalizedRanking(
        factors=FLAGS.bpr_factors, random_state=seed or 1, num_threads=FLAGS.threads
    )
    max_iterations = FLAGS.bpr_max_iterations
    if FLAGS.iterations_cap:
        max_iterations = min(max_iterations, FLAGS.iterations_cap)
    log = FitLog(FLAGS.target_recall, FLAGS.bpr_patience, FLAGS.bpr_eval_every)
    metrics = _fit_implicit(model, data, log, max_iterations, FLAGS.bpr_eval_every)
    settings = {
        "factors": model.factors,
        "learning_rate": model.learning_rate,
        "regularization": model.regularization,
        "seed": seed or 1,
        "iterations": _schedule(FLAGS.bpr_eval_every, FLAGS.bpr_patience, max_iterations),
        "scores": "implicit's: factors + 1 columns (an item bias against a user column of 1)",
    }
    return {**log.record(), "metrics": metrics, "settings": settings}


def child_advjax(system: str, seed: int) -> dict:
    """An advjax run from its flagfile through train_events, its events recorded."""
    from advjax.train.loop import train_events

    cfg = system_config(system, seed)
    data = _load()
    log = FitLog(FLAGS.target_recall, cfg.patience, cfg.eval_every)
    report = None
    for event in train_events(cfg, None, data=data):
        if isinstance(event, events.RunStarted):
            log.start = time.perf_counter()
        elif isinstance(event, events.EpochTrained):
            log.trained(event.seconds)
        elif isinstance(event, events.Validation):
            log.validated(event.epoch, event.metrics)
            print(f"epoch {event.epoch}: valid Recall@20 "
                  f"{event.metrics[SELECTION_METRIC]:.4f}", flush=True)  # fmt: skip
        elif isinstance(event, events.Report):
            report = event
    record = log.record()
    record["best_iteration"] = report.best_epoch
    return {**record, "metrics": dict(report.metrics), "settings": report.results["flags"]}


def child_recbole_eval(snapshots: str, recbole_record: str) -> dict:
    """RecBole's snapshots (benchmarks/peers_recbole.py) evaluated with advjax's
    evaluator: valid at each, every split at the best; RecBole's timings and memory."""
    with open(recbole_record) as f:
        trained = json.load(f)
    data = _load()
    evaluators = build_evaluators(data)
    log = FitLog(FLAGS.target_recall)
    best, tables = None, {}
    for snap in trained["snapshots"]:
        epoch = snap["epoch"]
        while len(log.seconds) < epoch:
            log.trained(trained["epoch_s"][len(log.seconds)])
        with np.load(os.path.join(snapshots, f"epoch_{epoch}.npz")) as f:
            users = _rows(f["users"], data.n_users)
            items = _rows(f["items"], data.n_items)
        valid = evaluate_factors(evaluators, users, items, ("valid",))["valid"]
        if log.validated(epoch, valid):
            best, tables = epoch, {"users": users, "items": items}
    for seconds in trained["epoch_s"][len(log.seconds) :]:
        log.trained(seconds)
    record = log.record()
    record["to_target"] = record["to_target"] and {**record["to_target"], "wall_s": None}
    metrics = evaluate_factors(evaluators, tables["users"], tables["items"])
    return {
        **record, "best_iteration": best, "metrics": metrics, "settings": trained["settings"],
        "peak_rss_mib": trained["peak_rss_mib"], "versions": trained["versions"],
    }  # fmt: skip


def _rows(table: np.ndarray, n: int) -> np.ndarray:
    """`table` with n rows: zero rows added for ids the other library never saw."""
    if table.shape[0] >= n:
        return table[:n]
    return np.concatenate([table, np.zeros((n - table.shape[0], table.shape[1]), table.dtype)])


def run_child(system: str) -> None:
    tick = time.perf_counter()
    seed = FLAGS.child_seed
    if system == "recbole_eval":
        record = child_recbole_eval(FLAGS.snapshots, FLAGS.recbole_record)
    elif system == "implicit_als":
        record = child_implicit_als(seed)
    elif system == "implicit_bpr":
        record = child_implicit_bpr(seed)
    else:
        record = child_advjax(system, seed)
    record.setdefault("peak_rss_mib", peak_rss_mb())
    record["process_s"] = time.perf_counter() - tick
    print(RECORD_PREFIX + json.dumps(record), flush=True)


# ---------------------------------------------------------------------------------------
# The parent: spawn, tabulate, record.


PASSED_FLAGS = (
    "target_recall", "data_dir", "dataset", "configs", "flagfiles", "iterations_cap",
    "bpr_factors", "bpr_eval_every", "bpr_patience", "bpr_max_iterations", "threads",
)  # fmt: skip


def _child_args(system: str, seed: int) -> list[str]:
    args = [sys.executable, "-m", "benchmarks.peers", f"--child={system}", f"--child_seed={seed}"]
    for name in PASSED_FLAGS:
        value = FLAGS[name].value
        args.append(f"--{name}={','.join(value) if isinstance(value, list) else value}")
    return args + ["--compilation_cache="]  # every child compiles: fit s includes it


def _thread_env() -> dict:
    """implicit asks for a single-threaded BLAS beside its own threads."""
    return {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "OMP_NUM_THREADS": str(FLAGS.threads)}  # fmt: skip


def spawn_system(system: str, seed: int) -> dict:
    """One system fitted in a fresh process: its record, or {"error"} / {"not_run"}."""
    if system == "recbole_lightgcn":
        return spawn_recbole(seed)
    if SYSTEMS[system].library == "implicit" and importlib.util.find_spec("implicit") is None:
        return {"not_run": "implicit is not installed (pip install -e '.[peers]')"}
    if system == "implicit_als":
        try:
            implicit_als_settings(system_config(system))
        except ConfigError as err:
            return {"not_run": str(err)}
    env = _thread_env() if SYSTEMS[system].library == "implicit" else None
    record, status = spawn_record(_child_args(system, seed), env=env)
    return record if record is not None else {"error": f"child exited with status {status}"}


def spawn_recbole(seed: int) -> dict:
    """RecBole's LightGCN in its own interpreter, then its snapshots evaluated by an
    advjax child; {"not_run": reason} where RecBole is missing or fails."""
    python = FLAGS.recbole_python
    if python and not os.path.isabs(python):
        python = str(REPO / python)
    if not os.path.isfile(python):
        return {"not_run": f"no interpreter {FLAGS.recbole_python} (--recbole_python; "
                "benchmarks/recbole-requirements.txt says how to make one)"}  # fmt: skip
    probe = subprocess.run([python, "-c", "import recbole, torch"], capture_output=True, text=True)
    if probe.returncode:
        last = (probe.stderr.strip().splitlines() or ["status " + str(probe.returncode)])[-1]
        return {"not_run": f"{FLAGS.recbole_python} cannot import RecBole: {last}"}
    cfg = system_config("recbole_lightgcn", seed)
    if not cfg.data_dir:
        return {"not_run": "RecBole reads a --data_dir; an embedded --dataset has none"}
    with tempfile.TemporaryDirectory(prefix="peers-recbole-") as work:
        out = os.path.join(work, "snapshots")
        args = [
            python, str(REPO / "benchmarks" / "peers_recbole.py"), f"--split_dir={cfg.data_dir}",
            f"--work={work}", f"--out={out}", f"--epochs={cfg.max_epochs}",
            f"--eval_step={cfg.eval_every}", f"--stopping_step={cfg.patience}",
            f"--emb_size={cfg.emb_dim}", f"--n_layers={cfg.n_layers}", f"--seed={cfg.seed}",
            f"--threads={FLAGS.threads}",
        ]  # fmt: skip
        trained, status = spawn_record(args, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if trained is None:
            return {"not_run": f"RecBole's run exited with status {status} (its lines above)"}
        path = os.path.join(work, "record.json")
        with open(path, "w") as f:
            json.dump(trained, f)
        extra = [f"--snapshots={out}", f"--recbole_record={path}"]
        record, status = spawn_record(_child_args("recbole_eval", seed) + extra)
    return record if record is not None else {"error": f"evaluation exited with status {status}"}


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def results_table(rows: list[dict]) -> str:
    rep = "seed" if rows and "seed" in rows[0] else "rep"
    head = (f"{'system':<18} {rep:>4} {'fit s':>8} {'s to target':>11} {'iters':>9} "
            f"{'test R@20':>9} {'N@20':>7} {'peak RSS MiB':>12} {'s/iter':>8}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in rows:
        label = f"{r['system']:<18} {r.get('rep', r.get('seed')):>4} "
        if "not_run" in r or "error" in r:
            lines.append(label + ("not run: " + r["not_run"] if "not_run" in r else
                                  "FAILED: " + r["error"]))  # fmt: skip
            continue
        test = r["metrics"][TEST_SPLIT]
        iters = f"{r['iterations']} ({r['best_iteration']})"
        lines.append(
            label + f"{r['fit_s']:>8.2f} {_fmt(r['to_target_s'], '.2f'):>11} {iters:>9} "
            f"{test['recall@20']:>9.4f} {test['ndcg@20']:>7.4f} {r['peak_rss_mib']:>12.0f} "
            f"{_fmt(r['iteration_s'], '.4f'):>8}"
        )
    return "\n".join(lines)


def summarize(rows: list[dict]) -> dict:
    """Per system: medians over its repetitions, and the test metrics' mean ± std."""
    out = {}
    for system in dict.fromkeys(r["system"] for r in rows):
        done = [r for r in rows if r["system"] == system and "metrics" in r]
        if not done:
            continue
        reached = [r["to_target_s"] for r in done if r["to_target_s"] is not None]
        entry = {
            "runs": len(done),
            "fit_s_median": statistics.median(r["fit_s"] for r in done),
            "iteration_s_median": statistics.median(r["iteration_s"] for r in done),
            "to_target_s_median": statistics.median(reached) if reached else None,
            "reached_target": f"{len(reached)}/{len(done)}",
            "peak_rss_mib_max": max(r["peak_rss_mib"] for r in done),
        }
        for metric in ("recall@20", "ndcg@20"):
            values = np.array([r["metrics"][TEST_SPLIT][metric] for r in done])
            entry[f"test_{metric}_mean"] = float(values.mean())
            entry[f"test_{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[system] = entry
    return out


def ratios(summary: dict, rows: list[dict]) -> dict:
    """advjax's iALS sweep over implicit's ALS iteration (medians of this run)."""
    if "ials" not in summary or "implicit_als" not in summary:
        return {}
    ials = next(r["settings"] for r in rows if r["system"] == "ials" and "metrics" in r)
    peer = next(r["settings"] for r in rows if r["system"] == "implicit_als" and "metrics" in r)
    return {
        "ials_sweep_over_implicit_als_iteration": summary["ials"]["iteration_s_median"]
        / summary["implicit_als"]["iteration_s_median"],
        "ials_fit_over_implicit_als_fit": summary["ials"]["fit_s_median"]
        / summary["implicit_als"]["fit_s_median"],
        "factors": ials["emb_dim"],
        "solvers": f"advjax {_solver(ials['ials_solver'] == 'cg', ials['ials_cg_steps'])}, "
        f"implicit {_solver(peer['use_cg'], peer['cg_steps'])}",
    }


def _solver(cg: bool, steps: int) -> str:
    return f"CG, {steps} steps" if cg else "exact (Cholesky)"


def _peer_versions() -> dict:
    versions = {}
    for name in ("implicit", "threadpoolctl"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.child:
        run_child(FLAGS.child)
        return
    systems = selected_systems()
    check_inputs(systems)
    start = time.perf_counter()
    machine = machine_info()
    seeds = FLAGS.seeds > 0
    print(f"{machine['cpu']}, {machine['cores']} cores, JAX {jax.__version__} on "
          f"{machine['platform']}; load {machine['load_avg_1m_start']:.2f}; "
          f"{FLAGS.threads} threads for implicit and RecBole", flush=True)  # fmt: skip
    print(f"target: valid Recall@20 >= {FLAGS.target_recall} (--target_recall)", flush=True)
    rows = []
    for rep in range(1, (FLAGS.seeds if seeds else FLAGS.reps) + 1):
        for system in systems:
            print(f"{system} {'seed' if seeds else 'rep'} {rep}", flush=True)
            record = spawn_system(system, rep if seeds else 0)
            rows.append({"system": system, ("seed" if seeds else "rep"): rep, **record})
            if "not_run" in record:
                print(f"  not run: {record['not_run']}", flush=True)
    machine["load_avg_1m_end"] = os.getloadavg()[0]
    summary = summarize(rows)
    ratio = ratios(summary, rows)
    print()
    print(results_table(rows))
    if seeds:
        for system, s in summary.items():
            print(f"{system}: test_ood Recall@20 "
                  f"{mean_std_text(s['test_recall@20_mean'], s['test_recall@20_std'])}, NDCG@20 "
                  f"{mean_std_text(s['test_ndcg@20_mean'], s['test_ndcg@20_std'])} "
                  f"over {s['runs']} seeds")  # fmt: skip
    if ratio:
        print(f"advjax iALS sweep / implicit ALS iteration: "
              f"{ratio['ials_sweep_over_implicit_als_iteration']:.2f}x at "
              f"{ratio['factors']} factors ({ratio['solvers']}); fit: "
              f"{ratio['ials_fit_over_implicit_als_fit']:.2f}x (advjax's first sweep "
              "compiles; the fits' iterations differ)")  # fmt: skip
    print(f"packages: {package_versions() | _peer_versions()}")
    path = pathlib.Path(FLAGS.json) if FLAGS.json else (
        REPO / "benchmarks" / "results" / f"{datetime.date.today().isoformat()}-"
        f"{jax.default_backend()}-peers{'-seeds' if seeds else ''}.json"
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(str(path), json.dumps({
        "command": "python -m benchmarks.peers " + " ".join(sys.argv[1:]),
        "commit": git_commit(),
        "machine": machine,
        "packages": package_versions() | _peer_versions(),
        "settings": {
            "systems": systems, "reps": FLAGS.reps, "seeds": FLAGS.seeds,
            "target_recall": FLAGS.target_recall, "threads": FLAGS.threads,
            "data": data_args(), "flagfiles": flagfile_paths(),
            "iterations_cap": FLAGS.iterations_cap,
            "test_split": TEST_SPLIT,
            "timing": "fit_s: training seconds, validation excluded (advjax: the sum of "
            "EpochTrained.seconds, metrics.jsonl's epoch_s, epoch 1 with XLA compilation; "
            "implicit: its fit callback's per-iteration seconds; RecBole: _train_epoch); "
            "iteration_s: the median after the first",
        },
        "summary": summary,
        "ratios": ratio,
        "records": rows,
        "wall_s": time.perf_counter() - start,
    }, indent=1))  # fmt: skip
    print(f"wrote {path}", flush=True)
    if any("error" in r for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    cli.run_main(main)
