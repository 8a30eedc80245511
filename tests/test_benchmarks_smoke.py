"""benchmarks.record's per-cell function on Coat, and the floor arithmetic by hand."""

import math

import numpy as np
import pytest

from advjax.data import load_dataset
from benchmarks import floor
from benchmarks.record import RECORD_KEYS, bench_cell
from benchmarks.run import results_table

# Rates of 1000 FLOP/s and 1000 B/s: the floor in seconds is the count / 1000.
SLOW_RATES = {"gemm_gflop_s": 1e-6, "stream_gb_s": 1e-6, "gather_gb_s": 1e-6}


def test_score_cost_dense_and_gather_by_hand():
    # I = 5 <= 128 * 4: the dense [2, 5] product, 2 B I d FLOPs, (B d + I d + B I) words.
    assert floor.score_cost(2, 5, 4, 8) == floor.Cost(2 * 2 * 5 * 8, 4 * (16 + 40 + 10), 0)
    # I = 1000 > 128 * 2: gather [2, 2, 8] rows + ids; stream user rows + scores.
    assert floor.score_cost(2, 1000, 2, 8) == floor.Cost(2 * 2 * 2 * 8, 4 * (16 + 4), 4 * 4 * 9)


def test_lightgcn_adv_step_and_floor_by_hand():
    terms = floor.cf_step_terms(
        n_users=3, n_items=5, batch=2, n_neg=4, dim=8, n_layers=2, n_edges=10, adversarial=True
    )
    assert terms == {
        # 3 x (negatives + positive), both dense here (I = 5 <= 128).
        "scores": floor.Cost(3 * 320, 3 * 528, 0),
        "hardness": floor.Cost(160, 264, 0),
        # The rows path beats 2 layers x (fwd, bwd) full CSR products here. Per pass:
        # one product over the E = 5 pairs (2 d FLOPs and 4 + 4 + 4 d gathered bytes
        # per pair, 4 + 4 d streamed bytes per item row) and one dense G = R^T R
        # product (2 I^2 d FLOPs; I^2 + 2 I d words streamed).
        "propagation": 2 * (floor.Cost(80, 180, 200) + floor.Cost(400, 4 * (25 + 80), 0)),
        # Adam over (3 + 5) * 8 = 64 parameters: 12 FLOPs, 7 words each.
        "adam": floor.Cost(12 * 64, 0, 0) + floor.Cost(0, 7 * 4 * 64, 0),
    }
    full = floor.propagation_cost(10, 8, 8, 2, passes=2)
    assert full == floor.Cost(4 * 10 * 16, 4 * 8 * 36, 4 * 10 * 40)  # the path not taken
    step = floor.total(terms)
    assert step == floor.Cost(2848, 4840, 400)
    # Memory-bound: (4840 + 400) B at 1000 B/s beats 2848 FLOP at 1000 FLOP/s.
    assert floor.floor_seconds(step, SLOW_RATES) == pytest.approx(5.24)
    compute_bound = {**SLOW_RATES, "stream_gb_s": 1.0, "gather_gb_s": 1.0}
    assert floor.floor_seconds(step * 3, compute_bound) == pytest.approx(3 * 2.848)


def test_probes_grow_until_they_last_long_enough():
    # A probe whose time is its size in microseconds: doubling from 64 stops at the first
    # size taking at least 1 ms (1024), or at the cap when that comes first.
    tried = []

    def fake_seconds(size):
        tried.append(size)
        return size * 1e-6

    assert floor.grow_until(fake_seconds, 64, max_size=1 << 20, min_seconds=1e-3) == (1024, 1024e-6)
    assert tried == [64, 128, 256, 512, 1024]
    assert floor.grow_until(fake_seconds, 64, max_size=300, min_seconds=1e-3) == (256, 256e-6)
    # A probe already long enough is measured once, at its own size.
    tried.clear()
    assert floor.grow_until(fake_seconds, 4096, max_size=1 << 20, min_seconds=1e-3) == (
        4096,
        4096e-6,
    )
    assert tried == [4096]


def test_bench_cell_coat_record():
    data = load_dataset("coat")
    record = bench_cell(
        data,
        dataset="coat",
        backbone="mf",
        loss="adv_infonce",
        batch_size=1024,
        n_neg=64,
        tau=0.75,
        warmup_epochs=1,
        timed_epochs=1,
        rates=SLOW_RATES,
        log=lambda line: None,
    )
    for key in RECORD_KEYS[3:]:
        value = record[key]
        assert isinstance(value, float | int) and math.isfinite(value) and value > 0, (key, value)
    assert (record["dataset"], record["backbone"], record["loss"]) == ("coat", "mf", "adv_infonce")

    # Coat: U 290, I 295 (dense negatives, gathered positive), d 64, B 1024, N 64.
    n_batches = data.train.nnz // 1024
    assert record["batches_per_epoch"] == n_batches
    scores = 3 * (2 * 1024 * 295 * 64 + 2 * 1024 * 1 * 64)
    hardness = 2 * 1024 * 295 * 64
    adam = 12 * (290 + 295) * 64
    assert record["flops_per_epoch"] == n_batches * (scores + hardness + adam)
    # At 1000 FLOP/s and 1000 B/s for every kind of byte: max(FLOPs, bytes) / 1000.
    expected_floor = max(record["flops_per_epoch"], record["bytes_per_epoch"]) / 1000
    assert record["floor_s"] == pytest.approx(expected_floor)
    assert record["floor_ratio"] == pytest.approx(record["epoch_s"] / record["floor_s"])
    assert "coat/mf/adv_infonce" in results_table([record])


def test_propagation_pick_needs_a_clear_win_that_agrees_with_bcoo():
    from benchmarks.propagation import pick_path

    times = {"bcoo": (2.0, 0.0), "segment_sum": (1.9, 0.0), "host_csr": (0.5, 1e-6)}
    # segment_sum is faster but by under 20 %; host_csr only competes on the CPU.
    assert pick_path(times, "gpu") == "bcoo"
    assert pick_path(times, "cpu") == "host_csr"
    times["csr"] = (1.5, 4.8e-7)
    assert pick_path(times, "gpu") == "csr"
    # A faster path that disagrees with bcoo is never picked.
    times["csr"] = (0.1, 2e-3)
    assert pick_path(times, "gpu") == "bcoo"
    assert pick_path({"bcoo": (2.0, 0.0)}, "gpu") == "bcoo"


def test_batch_benchmark_compares_seeds_and_tabulates():
    from benchmarks import batch

    result = {"best_epoch": 5, "valid": {"recall@20": 0.3}, "test_ood": {"recall@20": 0.2}}
    moved = {**result, "test_ood": {"recall@20": 0.2005}}
    records = {
        mode: {"wall_s": wall, "peak_rss_mb": 500.0, "epochs": [10, 5],
               "results": [result, result if mode != "vmap" else moved]}
        for mode, wall in (("one", 2.0), ("sequential", 4.0), ("map", 3.0), ("vmap", 2.5))
    }  # fmt: skip
    records["one"]["state_bytes_per_run"] = 2**20
    row = batch.summarize("coat/mf/infonce", records, seeds=2)
    assert row["map_exact"] == {"identical_seeds": 2, "max_metric_diff": 0.0}
    assert row["vmap_exact"]["identical_seeds"] == 1
    assert row["vmap_exact"]["max_metric_diff"] == pytest.approx(5e-4)
    assert (row["sequential_over_one"], row["map_over_one"]) == (2.0, 1.5)
    assert row["state_mb_per_run"] == 1.0
    text = batch.table([row])
    assert "| 3.0 s (1.50x) |" in text and "1/2 (max diff 5.0e-04)" in text


def test_augmented_cells_cost_their_propagations():
    sizes = dict(n_users=3, n_items=5, batch=2, n_neg=4, dim=8, n_layers=2, n_edges=10,
                 adversarial=False)  # fmt: skip
    plain = floor.cf_step_terms(**sizes)
    full = floor.propagation_cost(10, 8, 8, 2, passes=2)
    # 2 draws from 3 users: 3 (1 - (2/3)^2) = 5/3 distinct expected; 6 M^2 d FLOPs.
    users = 5 / 3
    contrast = floor.Cost(flops=6 * users**2 * 8, gather_bytes=4 * 4 * users * 8)
    assert floor.distinct_draws(3, 2) == pytest.approx(users)
    sgl = floor.cf_step_terms(**sizes, augment="sgl")
    assert sgl.keys() == {*plain, "views", "contrast"} and sgl["views"] == 2 * full
    assert sgl["contrast"].flops == pytest.approx(contrast.flops)
    assert sgl["contrast"].gather_bytes == pytest.approx(contrast.gather_bytes)
    xsimgcl = floor.cf_step_terms(**sizes, augment="xsimgcl")
    assert xsimgcl == {**plain, "propagation": full, "contrast": sgl["contrast"]}
    # NCL's centroids: 4 clusters asked, 3 users' and 4 items' (capped): 4 B K d each.
    ncl = floor.cf_step_terms(**sizes, augment="ncl", n_clusters=4)
    assert ncl["prototype"] == floor.Cost(
        flops=4 * 2 * (3 + 4) * 8, stream_bytes=4 * 2 * (3 + 4) * 8
    )
    assert floor.epoch_terms(n_users=3, n_items=5, dim=8, augment="sgl", n_clusters=4,
                             kmeans_iters=2) == {}  # fmt: skip
    kmeans = floor.epoch_terms(n_users=3, n_items=5, dim=8, augment="ncl", n_clusters=4,
                               kmeans_iters=2)["kmeans"]  # fmt: skip
    # 3 distance products of 2 N K d and 2 centroid sums of N d, users (3 x 3) and items (5 x 4).
    assert kmeans.flops == 3 * 2 * (3 * 3 + 5 * 4) * 8 + 2 * (3 + 5) * 8
    data = load_dataset("coat")
    record = bench_cell(data, dataset="coat", backbone="lightgcn", loss="infonce+sgl",
                        batch_size=1024, n_neg=64, tau=0.75, warmup_epochs=1, timed_epochs=1,
                        rates=SLOW_RATES, log=lambda line: None)  # fmt: skip
    assert record["loss"] == "infonce+sgl" and record["epoch_s"] > 0
    assert {"views", "contrast"} <= record["cf_step_terms"].keys()
    assert record["cf_epoch_terms"] == {} and math.isfinite(record["floor_ratio"])


def test_sharding_benchmark_memory_model_and_catalogue():
    from benchmarks import sharding

    # 6 copies of 64 float32 per row; 290 users and 300 items over 8 shards: 37 + 38 rows.
    assert sharding.model_table_bytes(290, 300, 1) == 590 * 64 * 4 * 6
    assert sharding.model_table_bytes(290, 300, 8) == (37 + 38) * 64 * 4 * 6
    assert sharding._mesh_sizes("one") == (1, 1)
    assert sharding._mesh_sizes("data:4,model:2") == (4, 2)
    alphas = dict(user_alpha=0.5, item_alpha=1.0)
    data = sharding.synthetic_split(500, 300, 5000, seed=3, **alphas)
    again = sharding.synthetic_split(500, 300, 5000, seed=3, **alphas)
    assert (data.train.items == again.train.items).all()
    indptr, items = data.train.indptr, data.train.items
    assert indptr[0] == 0 and indptr[-1] == len(items) <= 5000 and (np.diff(indptr) >= 0).all()
    for u in range(500):  # each user's items ascending and unique, as Interactions wants
        row = items[indptr[u] : indptr[u + 1]]
        assert (np.diff(row) > 0).all()
    counts = np.bincount(items, minlength=300)
    assert counts.max() > 20 * np.median(counts)  # a power law: a head far above the median
