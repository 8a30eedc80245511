"""Turn a raw interaction file into an advjax split directory.

  python -m data_prep.convert --input=ratings.csv --format=csv --user_col=userId \
      --item_col=movieId --rating_col=rating --min_rating=4 --split=random --out=DIR
  python -m data_prep.convert --input=ml-1m/ratings.dat --format=movielens \
      --min_rating=4 --k_core=5 --split=temporal --out=DIR
  python -m data_prep.convert --input=coat/train.ascii --format=matrix --min_rating=4 \
      --out=DIR

Steps, in order: parse (`data_prep.raw`: csv, tsv, movielens, recbole, matrix; gz,
CRLF, BOM); keep rows with rating >= --min_rating; keep each (user, item) pair once
(the earliest by time, else the first in the file); the --k_core (every user and item
with at least k pairs); split: ``random`` per user (round(valid * n_u) pairs to valid,
round(test * n_u) to test, at least one kept in train) or ``temporal`` (one global
time order: the last --test share is test, the --valid share before it valid); drop
valid/test pairs whose user or item has no training pair; number the remaining users
and items 0.. in ascending raw order (integers by value).

Writes, all at once (a temporary directory renamed to --out): train.txt, valid.txt,
test.txt (or test_id.txt with --test_name=test_id) as ``user item item ...`` lines;
ids.json ({"users": {raw id: index}, "items": {...}}); SPLIT.md (the command, the seed,
what each step removed, the counts per file). A malformed row stops the run with one
line naming file:line, and nothing is written.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import flags

from advjax.errors import ConfigError, DataError
from data_prep import cli, interactions, output, raw
from data_prep.interactions import TEST, TRAIN, VALID

FLAGS = flags.FLAGS
_COLUMN_FLAGS = ("user_col", "item_col", "rating_col", "time_col", "header")


@dataclasses.dataclass(frozen=True)
class Options:
    """What to keep and how to split (the flags of the same names)."""

    min_rating: float | None = None
    k_core: int = 0
    split: str = "random"
    valid: float = 0.1
    test: float = 0.2
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Converted:
    """A split with compact ids.

    Attributes:
      users, items: int64 [n]; 0-based ids of the kept pairs.
      roles: int8 [n]; TRAIN, VALID or TEST per pair.
      user_ids, item_ids: the raw id of each index.
      removed: step -> rows or pairs it removed, in pipeline order.
    """

    users: np.ndarray
    items: np.ndarray
    roles: np.ndarray
    user_ids: list[str]
    item_ids: list[str]
    removed: dict[str, int]


def check_options(table: raw.Table, options: Options) -> None:
    """Raises ConfigError when an option needs a column the table lacks, or is out of
    range."""
    if options.min_rating is not None and table.ratings is None:
        raise ConfigError("--min_rating needs a rating column (--rating_col)")
    if options.split == "temporal" and table.times is None:
        raise ConfigError("--split=temporal needs a time column (--time_col)")
    if options.split not in ("random", "temporal"):
        raise ConfigError(f"--split must be random or temporal, got {options.split!r}")
    if options.k_core < 0:
        raise ConfigError(f"--k_core must be >= 0, got {options.k_core}")
    interactions.check_shares(options.valid, options.test)


def convert(table: raw.Table, options: Options) -> Converted:
    """The pipeline of the module docstring on a parsed table.

    Raises:
      ConfigError: see `check_options`.
      DataError: no pair survives the rating filter, the k-core or the split.
    """
    check_options(table, options)
    removed = {"rows read": table.n_rows}
    keep = np.ones(table.n_rows, dtype=bool)
    if options.min_rating is not None:
        keep = table.ratings >= options.min_rating
        removed[f"rows with rating < {options.min_rating:g}"] = int((~keep).sum())
        if not keep.any():
            raise DataError(f"{table.path}: no row has rating >= {options.min_rating:g}")
    user_codes, user_vocab = interactions.encode_ids(table.users[keep])
    item_codes, item_vocab = interactions.encode_ids(table.items[keep])
    times = table.times[keep] if table.times is not None else None

    unique = interactions.first_of_each_pair(user_codes, item_codes, times)
    removed["repeated (user, item) rows (one kept)"] = len(user_codes) - len(unique)
    user_codes, item_codes = user_codes[unique], item_codes[unique]
    times = times[unique] if times is not None else None

    if options.k_core > 1:
        core = interactions.k_core(user_codes, item_codes, options.k_core)
        removed[f"pairs outside the {options.k_core}-core"] = int((~core).sum())
        if not core.any():
            raise DataError(f"{table.path}: the {options.k_core}-core is empty")
        user_codes, item_codes = user_codes[core], item_codes[core]
        times = times[core] if times is not None else None

    if options.split == "random":
        rng = np.random.default_rng(options.seed)
        roles = interactions.split_random(user_codes, options.valid, options.test, rng)
    else:
        roles = interactions.split_temporal(times, options.valid, options.test)
    known = interactions.known_to_training(user_codes, item_codes, roles)
    for role in (VALID, TEST):
        name = interactions.ROLE_NAMES[role]
        removed[f"{name} pairs of a user or item without training pairs"] = int(
            (~known & (roles == role)).sum()
        )
    users, kept_users = interactions.compact(user_codes, known)
    items, kept_items = interactions.compact(item_codes, known)
    return Converted(
        users=users[known],
        items=items[known],
        roles=roles[known],
        user_ids=[user_vocab[c] for c in kept_users],
        item_ids=[item_vocab[c] for c in kept_items],
        removed=removed,
    )


def role_pairs(converted: Converted, role: int) -> tuple[np.ndarray, np.ndarray]:
    """The (users, items) of one role."""
    mask = converted.roles == role
    return converted.users[mask], converted.items[mask]


def ids_json(user_ids: list[str], item_ids: list[str]) -> str:
    """ids.json: raw id -> index, users and items."""
    return output.json_text(
        {
            "users": {raw_id: k for k, raw_id in enumerate(user_ids)},
            "items": {raw_id: k for k, raw_id in enumerate(item_ids)},
        }
    )


def split_md(
    converted: Converted, command: str, table_path: str, fmt: str, options: Options, test_file: str
) -> str:
    """SPLIT.md: how the split was made and what it holds."""
    files = {
        "train.txt": role_pairs(converted, TRAIN),
        "valid.txt": role_pairs(converted, VALID),
        test_file: role_pairs(converted, TEST),
    }
    how = (
        f"random per user (seed {options.seed}): round(valid * n_u) of each user's pairs "
        "to valid, round(test * n_u) to test, at least one kept in train"
        if options.split == "random"
        else "temporal, one global time order (ties: file order): the last test share "
        "is test, the valid share before it valid"
    )
    positives = "all rows" if options.min_rating is None else f"rating >= {options.min_rating:g}"
    lines = [
        "# Split",
        "",
        "```",
        command,
        "```",
        "",
        f"- input: `{table_path}` (format {fmt})",
        f"- positives: {positives}",
        f"- k-core: {options.k_core if options.k_core > 1 else 'none'}",
        f"- split: {how}; valid {options.valid:g}, test {options.test:g}",
        f"- seed: {options.seed}",
        f"- ids: 0-based, ascending raw order (integers by value); raw -> index in ids.json: "
        f"{len(converted.user_ids):,} users, {len(converted.item_ids):,} items",
        "",
        "## Steps (rows read, then what each step removed)",
        "",
        "| step | count |",
        "|---|---:|",
        *(f"| {step} | {count:,} |" for step, count in converted.removed.items()),
        "",
        "## Files",
        "",
        *output.counts_table(files),
        "",
    ]
    return "\n".join(lines)


def split_files(converted: Converted, test_file: str) -> dict[str, str]:
    """The adjacency files and ids.json, by name."""
    return {
        "train.txt": interactions.adjacency_text(*role_pairs(converted, TRAIN)),
        "valid.txt": interactions.adjacency_text(*role_pairs(converted, VALID)),
        test_file: interactions.adjacency_text(*role_pairs(converted, TEST)),
        "ids.json": ids_json(converted.user_ids, converted.item_ids),
    }


def _columns_from_flags(fmt: str) -> raw.Columns:
    """The Columns the flags name; ConfigError for column flags a fixed format ignores."""
    if fmt not in raw.NAMED_COLUMNS:
        given = [f"--{name}" for name in _COLUMN_FLAGS if FLAGS[name].present]
        if given:
            verb = "does" if len(given) == 1 else "do"
            raise ConfigError(f"{', '.join(given)} {verb} not apply to --format={fmt}")
    return raw.Columns(
        user=FLAGS.user_col, item=FLAGS.item_col, rating=FLAGS.rating_col, time=FLAGS.time_col
    )


def define_flags() -> None:
    """Defines the CLI's flags (called only when run as a program, so the modules
    import side by side)."""
    flags.DEFINE_string("input", None, "The raw file (gzip'd when it ends in .gz).")
    flags.DEFINE_enum("format", None, raw.FORMATS, "The raw file's format.")
    flags.DEFINE_string("user_col", "user_id", "User column: header name or 0-based index.")
    flags.DEFINE_string("item_col", "item_id", "Item column: header name or 0-based index.")
    flags.DEFINE_string("rating_col", "", "Rating column (needed for --min_rating); empty: none.")
    flags.DEFINE_string("time_col", "", "Time column, numeric (needed for --split=temporal).")
    flags.DEFINE_bool("header", True, "csv/tsv: the first row names the columns.")
    flags.DEFINE_float("min_rating", None, "Keep rows with rating >= this (positives); unset: all.")
    flags.DEFINE_integer("k_core", 0, "Keep the k-core: users and items with >= k pairs; 0: all.")
    flags.DEFINE_enum("split", "random", ["random", "temporal"], "How pairs are split.")
    flags.DEFINE_float("valid", 0.1, "Share of pairs for validation (per user when random).")
    flags.DEFINE_float("test", 0.2, "Share of pairs for test (per user when random).")
    flags.DEFINE_integer("seed", 0, "Seed of the random split.")
    flags.DEFINE_enum("test_name", "test", ["test", "test_id"], "The test file's name (.txt).")
    flags.DEFINE_string("out", None, "The split directory to write (must not exist).")
    flags.DEFINE_bool("overwrite", False, "Replace --out if it exists.")


def main(argv: list[str]) -> None:
    for name in ("input", "format", "out"):
        if FLAGS[name].value is None:
            raise ConfigError(f"--{name} is required")
    out = output.check_out(FLAGS.out, overwrite=FLAGS.overwrite)
    columns = _columns_from_flags(FLAGS.format)
    options = Options(
        min_rating=FLAGS.min_rating,
        k_core=FLAGS.k_core,
        split=FLAGS.split,
        valid=FLAGS.valid,
        test=FLAGS.test,
        seed=FLAGS.seed,
    )
    table = raw.read_table(FLAGS.input, FLAGS.format, columns, header=FLAGS.header)
    converted = convert(table, options)
    test_file = f"{FLAGS.test_name}.txt"
    files = split_files(converted, test_file)
    command = cli.command_line("data_prep.convert")
    files["SPLIT.md"] = split_md(converted, command, table.path, FLAGS.format, options, test_file)
    output.write_split_dir(out, files, overwrite=FLAGS.overwrite)
    n = {interactions.ROLE_NAMES[r]: int((converted.roles == r).sum()) for r in (0, 1, 2)}
    print(
        f"{out}: {len(converted.user_ids):,} users, {len(converted.item_ids):,} items; "
        f"train {n['train']:,}, valid {n['valid']:,}, test {n['test']:,} pairs"
    )


if __name__ == "__main__":
    define_flags()
    cli.run_main(main)
