"""Tests for data_prep.raw, data_prep.interactions and the convert CLI, on small
synthetic raw files in every accepted format, hostile ones included."""

from __future__ import annotations

import gzip
import json
import pathlib
import re
import subprocess

import numpy as np
import pytest

from advjax.data import load_split_dir
from advjax.errors import ConfigError, DataError
from data_prep import convert, interactions, raw
from data_prep.interactions import TEST, TRAIN, VALID
from tests.helpers import run_module


def _write(tmp_path: pathlib.Path, name: str, text: str, *, gz: bool = False) -> pathlib.Path:
    path = tmp_path / name
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return run_module("data_prep.convert", *args, timeout=120)


def _ratings_csv(n_users: int = 12, n_items: int = 9, seed: int = 0) -> str:
    """A header and every (user, item) rated, with string ids and timestamps."""
    rng = np.random.default_rng(seed)
    rows = ["user_id,item_id,rating,ts"]
    t = 0
    for u in range(n_users):
        for i in range(n_items):
            t += 1
            rows.append(f"u{u},i{i},{rng.integers(1, 6)},{1_000_000 + t}")
    return "\n".join(rows) + "\n"


# ---- parsing -------------------------------------------------------------------------


def test_csv_by_header_names_and_indices():
    text = "a,b,r\n1,10,5\n2,20,3\n"
    by_name = raw.parse_table(text, "f", "csv", raw.Columns("a", "b", "r"), header=True)
    by_index = raw.parse_table(text, "f", "csv", raw.Columns("0", "1", "2"), header=True)
    for table in (by_name, by_index):
        assert table.users.tolist() == ["1", "2"]
        assert table.items.tolist() == ["10", "20"]
        assert table.ratings.tolist() == [5.0, 3.0]
        assert table.lines.tolist() == [2, 3]


def test_csv_quoted_fields_and_blank_lines():
    text = 'user,item\n"a, b",x\n\n"c",y\n'
    table = raw.parse_table(text, "f", "csv", raw.Columns("user", "item"), header=True)
    assert table.users.tolist() == ["a, b", "c"]
    assert table.lines.tolist() == [2, 4]


def test_tsv_without_header_uses_indices():
    table = raw.parse_table(
        "1\t2\t4\n3\t4\t5\n", "f", "tsv", raw.Columns("0", "1", "2"), header=False
    )
    assert table.items.tolist() == ["2", "4"]
    with pytest.raises(ConfigError, match="no header"):
        raw.parse_table("1\t2\n", "f", "tsv", raw.Columns("user", "1"), header=False)


def test_movielens():
    table = raw.parse_table(
        "1::31::2.5::1260759144\n1::1029::3::1260759179\n",
        "f",
        "movielens",
        raw.Columns(),
        header=True,
    )
    assert table.users.tolist() == ["1", "1"]
    assert table.items.tolist() == ["31", "1029"]
    assert table.ratings.tolist() == [2.5, 3.0]
    assert table.times.tolist() == [1260759144.0, 1260759179.0]


def test_movielens_wrong_field_count_names_line():
    with pytest.raises(DataError, match=r"^f:2: 3 '::'-separated fields"):
        raw.parse_table("1::2::3::4\n1::2::3\n", "f", "movielens", raw.Columns(), header=True)


def test_recbole_header_names_with_types():
    text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\t8\t4\t100\n"
    cols = raw.Columns(rating="rating", time="timestamp:float")
    table = raw.parse_table(text, "f", "recbole", cols, header=True)
    assert (table.users.tolist(), table.items.tolist()) == (["7"], ["8"])
    assert table.ratings.tolist() == [4.0] and table.times.tolist() == [100.0]


def test_matrix_zero_is_no_rating():
    table = raw.parse_table("0 5 0\n3 0 1\n", "f", "matrix", raw.Columns(), header=True)
    assert table.users.tolist() == ["0", "1", "1"]
    assert table.items.tolist() == ["1", "0", "2"]
    assert table.ratings.tolist() == [5.0, 3.0, 1.0]
    assert table.lines.tolist() == [1, 2, 2]


@pytest.mark.parametrize(
    "fmt, text, cols, message",
    [
        ("csv", "u,i,r\n1,2,5\n3,4\n", raw.Columns("u", "i", "r"), r"^f:3: 2 fields, no rating"),
        ("csv", "u,i,r\n1,2,five\n", raw.Columns("u", "i", "r"), r"^f:2: rating 'five' is not"),
        ("csv", "u,i,r\n1,2,nan\n", raw.Columns("u", "i", "r"), r"^f:2: rating 'nan' is not"),
        ("csv", "u,i\n1,\n", raw.Columns("u", "i"), r"^f:2: empty item id"),
        ("csv", "u,i\n1,2\n", raw.Columns("user", "i"), r"^f:1: no column 'user'"),
        ("tsv", "u\ti\tt\n1\t2\tyesterday\n", raw.Columns("u", "i", time="t"), r"^f:2: time"),
        ("matrix", "1 2\n3\n", raw.Columns(), r"^f:2: 1 values, expected 2"),
        ("matrix", "1 x\n", raw.Columns(), r"^f:1: rating 'x' is not"),
        ("csv", "", raw.Columns(), r"^f: no interactions"),
        ("csv", "u,i\n", raw.Columns("u", "i"), r"^f: no interactions"),
        ("matrix", "\n\n", raw.Columns(), r"^f: no interactions"),
        ("matrix", "0 0\n", raw.Columns(), r"^f: no interactions"),
        ("movielens", "", raw.Columns(), r"^f: no interactions"),
    ],
)
def test_malformed_rows_name_file_and_line(fmt, text, cols, message):
    with pytest.raises(DataError, match=message):
        raw.parse_table(text, "f", fmt, cols, header=True)


def test_read_table_gz_crlf_bom_and_bad_utf8(tmp_path):
    text = "\ufeffu,i,r\r\n1,2,5\r\n3,4,4\r\n"
    for gz in (False, True):
        path = _write(tmp_path, f"r{int(gz)}.csv" + (".gz" if gz else ""), text, gz=gz)
        table = raw.read_table(path, "csv", raw.Columns("u", "i", "r"))
        assert table.users.tolist() == ["1", "3"] and table.lines.tolist() == [2, 3]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"u,i\n1,2\n\xff,3\n")
    with pytest.raises(DataError, match=r"bad.csv:3: not UTF-8"):
        raw.read_table(bad, "csv", raw.Columns("u", "i"))
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(DataError, match="unreadable gzip"):
        raw.read_table(broken, "csv", raw.Columns("u", "i"))
    with pytest.raises(DataError, match="no such file"):
        raw.read_table(tmp_path / "missing.csv", "csv")


# ---- pipeline steps ------------------------------------------------------------------


def test_encode_ids_orders_integers_by_value():
    codes, vocab = interactions.encode_ids(np.array(["10", "9", "b", "a", "9", "-1"]))
    assert vocab == ["-1", "9", "10", "a", "b"]
    assert [vocab[c] for c in codes] == ["10", "9", "b", "a", "9", "-1"]


def test_first_of_each_pair_keeps_earliest():
    users, items = np.array([0, 0, 1, 0]), np.array([1, 1, 1, 1])
    assert interactions.first_of_each_pair(users, items).tolist() == [0, 2]
    times = np.array([5.0, 3.0, 1.0, 3.0])
    assert interactions.first_of_each_pair(users, items, times).tolist() == [1, 2]


def test_k_core_is_iterative():
    # User 2 has one pair; dropping it leaves item 2 with one pair, which then goes too.
    users = np.array([0, 0, 1, 1, 0, 2, 3, 3])
    items = np.array([0, 1, 0, 1, 2, 2, 0, 1])
    keep = interactions.k_core(users, items, 2)
    assert keep.tolist() == [True, True, True, True, False, False, True, True]


def test_split_random_per_user_counts_and_keeps_a_train_pair():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(5), [1, 2, 5, 10, 20])
    roles = interactions.split_random(users, 0.1, 0.2, rng)
    for u, n in enumerate([1, 2, 5, 10, 20]):
        r = roles[users == u]
        n_test = min(int(np.floor(0.2 * n + 0.5)), n - 1)
        n_valid = min(int(np.floor(0.1 * n + 0.5)), n - 1 - n_test)
        assert ((r == TEST).sum(), (r == VALID).sum()) == (n_test, n_valid)
        assert (r == TRAIN).sum() >= 1


def test_split_temporal_puts_latest_last():
    times = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6, 0], dtype=float)
    roles = interactions.split_temporal(times, 0.2, 0.3)
    assert set(times[roles == TEST]) == {7, 8, 9}
    assert set(times[roles == VALID]) == {5, 6}
    with pytest.raises(ConfigError):
        interactions.split_temporal(times, 0.5, 0.5)


def test_adjacency_text_reads_back():
    text = interactions.adjacency_text(np.array([2, 0, 2, 0]), np.array([5, 3, 1, 4]))
    assert text == "0 3 4\n2 1 5\n"
    assert interactions.adjacency_text(np.array([]), np.array([])) == ""


def test_convert_every_eval_pair_known_and_ids_compact():
    table = raw.parse_table(
        _ratings_csv(), "f", "csv", raw.Columns(rating="rating", time="ts"), header=True
    )
    for split in ("random", "temporal"):
        result = convert.convert(table, convert.Options(min_rating=3, split=split))
        train = result.roles == TRAIN
        assert set(result.users) == set(result.users[train]) == set(range(len(result.user_ids)))
        assert set(result.items) == set(result.items[train]) == set(range(len(result.item_ids)))
        keys = result.users * len(result.item_ids) + result.items
        assert len(np.unique(keys)) == len(keys)


def test_convert_reports_duplicates_and_options_needing_columns():
    table = raw.parse_table("u,i\n1,2\n1,2\n2,2\n", "f", "csv", raw.Columns("u", "i"), header=True)
    result = convert.convert(table, convert.Options(valid=0, test=0))
    assert result.removed["repeated (user, item) rows (one kept)"] == 1
    with pytest.raises(ConfigError, match="--min_rating needs"):
        convert.convert(table, convert.Options(min_rating=4))
    with pytest.raises(ConfigError, match="temporal needs"):
        convert.convert(table, convert.Options(split="temporal"))
    with pytest.raises(DataError, match="no row has rating >= 9"):
        rated = raw.parse_table(
            "u,i,r\n1,2,3\n", "f", "csv", raw.Columns("u", "i", "r"), header=True
        )
        convert.convert(rated, convert.Options(min_rating=9))


# ---- the CLI -------------------------------------------------------------------------


def test_cli_csv_writes_a_loadable_split(tmp_path):
    src = _write(tmp_path, "ratings.csv.gz", _ratings_csv().replace("\n", "\r\n"), gz=True)
    out = tmp_path / "split"
    args = (
        f"--input={src}", "--format=csv", "--rating_col=rating", "--time_col=ts",
        "--min_rating=3", "--k_core=2", "--seed=3",
    )  # fmt: skip
    proc = _run(*args, f"--out={out}")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "SPLIT.md",
        "ids.json",
        "test.txt",
        "train.txt",
        "valid.txt",
    ]
    warnings = []
    split = load_split_dir(out, warn=warnings.append)
    assert warnings == []
    assert set(split.tests) == {"test"}
    ids = json.loads((out / "ids.json").read_text())
    assert sorted(ids["users"].values()) == list(range(split.n_users))
    assert sorted(ids["items"].values()) == list(range(split.n_items))
    md = (out / "SPLIT.md").read_text()
    assert "--seed=3" in md and "| train.txt |" in md and "rating < 3" in md
    # Same command, same files.
    again = tmp_path / "again"
    assert _run(*args, f"--out={again}").returncode == 0
    for name in ("train.txt", "valid.txt", "test.txt", "ids.json"):
        assert (out / name).read_bytes() == (again / name).read_bytes()


@pytest.mark.parametrize(
    "fmt, text, extra",
    [
        ("movielens", "1::10::5::100\n1::11::4::101\n2::10::4::102\n2::11::5::103\n", []),
        ("recbole", "user_id:token\titem_id:token\n1\t10\n1\t11\n2\t10\n2\t11\n", []),
        ("matrix", "5 4\r\n4 5\r\n", ["--min_rating=4"]),
        ("tsv", "1\t10\n1\t11\n2\t10\n2\t11\n", ["--noheader", "--user_col=0", "--item_col=1"]),
    ],
)
def test_cli_each_format(tmp_path, fmt, text, extra):
    src = _write(tmp_path, "in.txt", text)
    out = tmp_path / "out"
    proc = _run(
        f"--input={src}", f"--format={fmt}", "--valid=0", "--test=0", f"--out={out}", *extra
    )
    assert proc.returncode == 0, proc.stderr
    split = load_split_dir(out, warn=lambda line: None)
    assert split.train.nnz == 4 and split.n_users == 2 and split.n_items == 2
    assert json.loads((out / "ids.json").read_text())["items"] == (
        {"0": 0, "1": 1} if fmt == "matrix" else {"10": 0, "11": 1}
    )


def test_cli_temporal_split(tmp_path):
    lines = [f"{u}::{i}::5::{10 * u + i}" for u in range(4) for i in range(5)]
    src = _write(tmp_path, "ratings.dat", "\n".join(lines) + "\n")
    out = tmp_path / "out"
    proc = _run(f"--input={src}", "--format=movielens", "--split=temporal", f"--out={out}")
    assert proc.returncode == 0, proc.stderr
    assert "temporal" in (out / "SPLIT.md").read_text()


@pytest.mark.parametrize(
    "text, args, message",
    [
        ("u,i,r\n1,2,5\n1,3,x\n", ["--rating_col=r"], r"^error: .*in.csv:3: rating 'x' is not"),
        ("u,i\n1,2\n2\n", [], r"^error: .*in.csv:3: 1 fields, no item"),
        ("", [], r"^error: .*in.csv: no interactions"),
        ("u,i\n1,2\n", ["--rating_col=r"], r"^error: .*in.csv:1: no column 'r'"),
        ("u,i\n1,2\n", ["--min_rating=4"], r"^error: --min_rating needs a rating column"),
        ("u,i\n1,2\n", ["--split=temporal"], r"^error: --split=temporal needs"),
        ("u,i\n1,2\n", ["--valid=0.6", "--test=0.5"], r"^error: --valid=0.6 and --test=0.5"),
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, text, args, message):
    src = _write(tmp_path, "in.csv", text)
    out = tmp_path / "out"
    proc = _run(
        f"--input={src}", "--format=csv", "--user_col=u", "--item_col=i", f"--out={out}", *args
    )
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert re.match(message, proc.stderr), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_cli_refuses_existing_out_and_flag_errors(tmp_path):
    src = _write(tmp_path, "in.csv", "user_id,item_id\n1,2\n")
    (tmp_path / "out").mkdir()
    proc = _run(f"--input={src}", "--format=csv", f"--out={tmp_path / 'out'}")
    assert proc.returncode == 1 and "already exists; pass --overwrite" in proc.stderr
    proc = _run(f"--input={src}", "--format=movielens", "--user_col=x", f"--out={tmp_path / 'o'}")
    assert proc.returncode == 1 and "--user_col does not apply" in proc.stderr
    proc = _run(f"--input={src}", "--format=xml", f"--out={tmp_path / 'o'}")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    proc = _run("--format=csv", f"--out={tmp_path / 'o'}")
    assert proc.returncode == 1 and "--input is required" in proc.stderr


def test_cli_overwrite_replaces(tmp_path):
    src = _write(tmp_path, "in.csv", "user_id,item_id\n1,2\n1,3\n2,2\n2,3\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    proc = _run(f"--input={src}", "--format=csv", f"--out={out}", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert not (out / "stale.txt").exists() and (out / "train.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out"]
