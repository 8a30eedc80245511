"""experiments.timing: which epochs are timed, and what comes back, on Coat."""

import ast
import pathlib

import numpy as np

from advjax.data import load_dataset
from advjax.train import TrainConfig
from experiments.timing import time_epochs

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_each_pass_is_timed_after_its_warm_up():
    data = load_dataset("coat")
    lines = []
    times = time_epochs(
        data, TrainConfig(loss="adv_infonce", batch_size=256), label="coat/mf/adv",
        warmup_epochs=1, timed_epochs=2, max_batches=1, log=lines.append,
    )  # fmt: skip
    assert (times.n_batches, times.full_batches) == (1, data.train.nnz // 256)
    assert len(times.cf_times) == len(times.adv_times) == 2
    assert times.epoch_s == float(np.median(times.cf_times)) > 0
    assert times.adv_epoch_s == float(np.median(times.adv_times)) > 0
    assert times.propagation == "-" and times.compile_s > 0
    assert lines[0] == (
        "coat/mf/adv: 290 users, 295 items, 1363 pairs, 0 edges; batch 256, N 64, tau 0.75; "
        "1 of 5 batches/epoch; propagation -"
    )
    assert [line.split(": adv ")[0] for line in lines[1:]] == [
        "  epoch 0 (warm-up)", "  epoch 1 (timed)", "  epoch 2 (timed)",
    ]  # fmt: skip
    # Without an adversary only the CF pass is compiled and timed.
    times = time_epochs(
        data, TrainConfig(loss="infonce", batch_size=256), label="coat/mf/infonce",
        warmup_epochs=0, timed_epochs=1, max_batches=1, log=lambda line: None,
    )  # fmt: skip
    assert len(times.cf_times) == 1 and times.adv_times == [] and times.adv_epoch_s is None


def test_experiments_import_nothing_of_benchmarks():
    # benchmarks/ may import experiments/ (flagfiles, timing), never the reverse.
    for path in sorted((REPO / "experiments").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "benchmarks" for n in names), (path, names)
