"""RecBole's LightGCN on a split directory: benchmarks/peers.py's `recbole_lightgcn` child.

  ../peers-venv/bin/python benchmarks/peers_recbole.py --split_dir=../shared/data/yahoo.new \
      --work=/tmp/rb --out=/tmp/rb/snapshots --epochs=1000 --eval_step=5 --stopping_step=10

RecBole 1.2.1 needs torch and pins what advjax's environment does not share (numpy < 2,
pandas < 2.3, scipy < 1.12, scikit-learn < 1.6: benchmarks/recbole-requirements.txt),
so this script runs in an interpreter of its own and imports nothing of advjax. It
writes the split's train / valid / test_ood files as RecBole atomic files (RecBole's
`benchmark_filename`: no re-splitting, no filtering), trains RecBole's LightGCN with
RecBole's own trainer and its defaults (BPR loss, one uniform negative per positive,
Adam at 1e-3, batches of 2048, reg_weight 1e-5) at the --emb_size and --n_layers
given, and early-stops on RecBole's validation Recall@20 every --eval_step epochs after
--stopping_step validations without a better one (the same rule as advjax's
--patience). At each validation it writes the final user and item representations
(RecBole's LightGCN scores by their dot product) to --out/epoch_E.npz, rows in the
split's own ids (rows of ids RecBole never saw are zero), so that benchmarks/peers.py
evaluates every system with advjax's evaluator.

The last stdout line is `BENCH_RECORD {json}`: each epoch's training seconds
(RecBole's `_train_epoch`, validation excluded), the epochs run, the snapshots, the peak
resident memory of this process, the settings and the versions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

RECORD_PREFIX = "BENCH_RECORD "
NAME = "split"
# RecBole's benchmark files, by the split's file names.
FILES = {"train": "train.txt", "valid": "valid.txt", "test": "test_ood.txt"}
# RecBole's settings the record keeps.
SETTINGS = (
    "embedding_size", "n_layers", "reg_weight", "learning_rate", "train_batch_size", "epochs",
    "eval_step", "stopping_step", "seed",
)  # fmt: skip


def peak_rss_mib() -> float:
    """VmHWM, as benchmarks/record.py's peak_rss_mb (ru_maxrss survives exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_atomic_files(split_dir: str, work: str) -> int:
    """The split's files as RecBole's NAME/NAME.{train,valid,test}.inter; returns the
    largest user id + 1."""
    os.makedirs(os.path.join(work, NAME), exist_ok=True)
    n_users = 0
    for part, file_name in FILES.items():
        with (
            open(os.path.join(split_dir, file_name)) as source,
            open(os.path.join(work, NAME, f"{NAME}.{part}.inter"), "w") as out,
        ):
            out.write("user_id:token\titem_id:token\n")
            for line in source:
                tokens = line.split()
                if len(tokens) > 1:
                    n_users = max(n_users, int(tokens[0]) + 1)
                    out.writelines(f"{tokens[0]}\t{item}\n" for item in tokens[1:])
    return n_users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split_dir", required=True)
    parser.add_argument("--work", required=True, help="RecBole's data, logs and checkpoints.")
    parser.add_argument("--out", required=True, help="Where the epoch_E.npz snapshots go.")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--eval_step", type=int, default=5)
    parser.add_argument("--stopping_step", type=int, default=10)
    parser.add_argument("--emb_size", type=int, default=64)
    parser.add_argument("--n_layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    split_dir, out = os.path.abspath(args.split_dir), os.path.abspath(args.out)
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(out, exist_ok=True)
    os.chdir(args.work)  # RecBole writes its log directories into the working directory
    n_users = write_atomic_files(split_dir, ".")

    import numpy as np
    import recbole
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.general_recommender import LightGCN
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    torch.set_num_threads(args.threads)
    config = Config(
        model="LightGCN",
        dataset=NAME,
        config_dict={
            "data_path": ".",
            "benchmark_filename": list(FILES),
            "load_col": {"inter": ["user_id", "item_id"]},
            "embedding_size": args.emb_size,
            "n_layers": args.n_layers,
            "epochs": args.epochs,
            "eval_step": args.eval_step,
            "stopping_step": args.stopping_step,
            "valid_metric": "recall@20",
            "metrics": ["Recall", "NDCG"],
            "topk": [20],
            "eval_args": {"order": "RO", "mode": "full", "group_by": "user"},
            "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
            "device": "cpu",
            "use_gpu": False,
            "show_progress": False,
            "checkpoint_dir": "checkpoints",
            "seed": args.seed,
            "reproducibility": True,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    model = LightGCN(config, train_data.dataset)
    # RecBole's row r is the split's id token r ("[PAD]" is row 0).
    user_ids = [int(t) for t in dataset.field2id_token["user_id"][1:]]
    item_ids = [int(t) for t in dataset.field2id_token["item_id"][1:]]
    n_users = max(n_users, max(user_ids) + 1)
    n_items = max(item_ids) + 1

    class TimedTrainer(Trainer):
        """RecBole's trainer, timing each epoch's training pass."""

        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.epoch_seconds: list[float] = []

        def _train_epoch(self, *a, **k):
            tick = time.perf_counter()
            loss = super()._train_epoch(*a, **k)
            self.epoch_seconds.append(time.perf_counter() - tick)
            return loss

    snapshots = []

    def snapshot(epoch_idx: int, valid_score: float) -> None:
        with torch.no_grad():
            users, items = model.forward()
        table_u = np.zeros((n_users, args.emb_size), np.float32)
        table_i = np.zeros((n_items, args.emb_size), np.float32)
        table_u[user_ids] = users[1:].numpy()
        table_i[item_ids] = items[1:].numpy()
        epoch = epoch_idx + 1
        np.savez(os.path.join(out, f"epoch_{epoch}.npz"), users=table_u, items=table_i)
        snapshots.append({"epoch": epoch, "recbole_valid_recall@20": float(valid_score)})

    trainer = TimedTrainer(config, model)
    trainer.fit(
        train_data, valid_data, verbose=False, saved=False, show_progress=False,
        callback_fn=snapshot,
    )  # fmt: skip
    record = {
        "epoch_s": trainer.epoch_seconds,
        "snapshots": snapshots,
        "peak_rss_mib": peak_rss_mib(),
        "settings": {key: config[key] for key in SETTINGS}
        | {"loss": "BPR", "negatives": "1 uniform", "threads": args.threads},
        "versions": {
            "recbole": recbole.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
    }
    print(RECORD_PREFIX + json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
