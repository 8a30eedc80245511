"""Coat rebuilt from its original rating matrices, without the shipped split's leak.

  python -m data_prep.coat --raw=../shared/data/coat_raw \
      --out=advjax/data/datasets/coat_rebuilt --overwrite \
      --compare=../shared/data/coat --report=results/coat_rebuilt.md

Coat (Schnabel et al., ICML 2016) ships two 290 x 300 rating matrices: train.ascii
(self-selected ratings) and test.ascii (ratings of randomly chosen items). As in the
split AdvInfoNCE ships (`advjax/data/datasets/coat`, SOURCE.md there): ratings >= 4
are positives; items without a positive in either matrix are dropped and the others
numbered 0.. in ascending raw column order; users keep their raw row index; test_ood
is test.ascii's positives and test_id the same pairs (Coat has no separate
in-distribution test). Unlike it, train and valid are exactly train.ascii's
positives: the shipped split adds 11 test-only pairs to train.

Validation follows what the shipped split shows (its seed and code are not public):
553 of its 1,916 train+valid pairs (0.29) are in valid; every user and every item
keeps a training pair (none of its 25 users or 45 items with a single positive has it
in valid, where a uniform draw would put about 7 and 13 there), while users or items of
equal size get differing valid counts (a global draw, not a per-user share). So: one
random positive of every user and one of every item stay in train, then
round(--valid_share * n) of the other pairs, drawn uniformly, go to valid (--seed).

With --compare=DIR (the shipped split) and --report=FILE, the differences are written
as markdown: counts per file, the leaked pairs, whether item indexing matches.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
from absl import flags

from advjax.data import SplitData, load_split_dir
from advjax.errors import ConfigError, DataError
from advjax.files import write_atomically
from data_prep import cli, interactions, output, raw

SOURCE = (
    "Schnabel et al., Recommendations as Treatments: Debiasing Learning and Evaluation, ICML 2016"
)


@dataclasses.dataclass(frozen=True)
class Pairs:
    """(user, item) pairs as two int64 arrays of equal length."""

    users: np.ndarray
    items: np.ndarray

    def keys(self) -> set[tuple[int, int]]:
        """The pairs as a set of (user, item) tuples."""
        return set(zip(self.users.tolist(), self.items.tolist(), strict=True))

    def __len__(self) -> int:
        return len(self.users)


@dataclasses.dataclass(frozen=True)
class CoatSplit:
    """The rebuilt split.

    Attributes:
      train, valid, test: pairs in rebuilt ids (users = raw rows).
      kept_items: int64 [n_items]; the raw column of each item index.
      n_users: raw rows.
    """

    train: Pairs
    valid: Pairs
    test: Pairs
    kept_items: np.ndarray
    n_users: int


def positives(table: raw.Table, min_rating: float) -> Pairs:
    """A parsed matrix's cells rated >= min_rating, as raw (row, column) pairs."""
    keep = table.ratings >= min_rating
    return Pairs(users=table.users[keep].astype(np.int64), items=table.items[keep].astype(np.int64))


def split_valid(
    users: np.ndarray, items: np.ndarray, share: float, rng: np.random.Generator
) -> np.ndarray:
    """bool [n]: which pairs go to valid. One random pair of every user and one of
    every item stay in train; of the others, round(share * n) drawn uniformly go to
    valid (fewer if fewer are free)."""
    if not 0 <= share < 1:
        raise ConfigError(f"--valid_share must be in [0, 1), got {share}")
    free = ~interactions.reserve_for_training(users, items, rng)
    n_valid = min(int(np.floor(share * len(users) + 0.5)), int(free.sum()))
    valid = np.zeros(len(users), dtype=bool)
    valid[rng.choice(np.flatnonzero(free), size=n_valid, replace=False)] = True
    return valid


def rebuild(
    train_table: raw.Table,
    test_table: raw.Table,
    *,
    min_rating: float = 4,
    valid_share: float = 0.29,
    seed: int = 0,
) -> CoatSplit:
    """The rebuild of the module docstring on the two parsed matrices."""
    train_pos, test_pos = positives(train_table, min_rating), positives(test_table, min_rating)
    if not len(train_pos):
        raise DataError(f"{train_table.path}: no rating >= {min_rating:g}")
    kept_items = np.unique(np.concatenate([train_pos.items, test_pos.items]))

    def renumber(pairs: Pairs) -> Pairs:
        return Pairs(pairs.users, np.searchsorted(kept_items, pairs.items))

    train_pos, test_pos = renumber(train_pos), renumber(test_pos)
    valid = split_valid(train_pos.users, train_pos.items, valid_share, np.random.default_rng(seed))
    n_users = int(max(train_pos.users.max(), test_pos.users.max(initial=0))) + 1
    return CoatSplit(
        train=Pairs(train_pos.users[~valid], train_pos.items[~valid]),
        valid=Pairs(train_pos.users[valid], train_pos.items[valid]),
        test=test_pos,
        kept_items=kept_items,
        n_users=n_users,
    )


def split_files(split: CoatSplit) -> dict[str, str]:
    """The split's files: train, valid, test_id = test_ood, ids.json."""
    test = interactions.adjacency_text(split.test.users, split.test.items)
    return {
        "train.txt": interactions.adjacency_text(split.train.users, split.train.items),
        "valid.txt": interactions.adjacency_text(split.valid.users, split.valid.items),
        "test_id.txt": test,
        "test_ood.txt": test,
        "ids.json": output.json_text(
            {
                "users": {str(u): u for u in range(split.n_users)},
                "items": {str(raw_item): k for k, raw_item in enumerate(split.kept_items)},
            }
        ),
    }


def _file_pairs(split: CoatSplit) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    test = (split.test.users, split.test.items)
    return {
        "train.txt": (split.train.users, split.train.items),
        "valid.txt": (split.valid.users, split.valid.items),
        "test_id.txt": test,
        "test_ood.txt": test,
    }


def source_md(split: CoatSplit, command: str, valid_share: float, seed: int) -> str:
    """SOURCE.md of the rebuilt directory: origin, how it was built, the counts."""
    dropped = sorted(set(range(int(split.kept_items.max()) + 1)) - set(split.kept_items.tolist()))
    train_items = set(split.train.items.tolist())
    cold = sorted(set(split.test.items.tolist()) - train_items - set(split.valid.items.tolist()))
    cold_pairs = int(np.isin(split.test.items, cold).sum())
    lines = [
        "# coat_rebuilt (Coat rebuilt from its rating matrices, leak-free)",
        "",
        f"**Source:** {SOURCE}; the original `train.ascii` / `test.ascii` "
        "(`../shared/data/coat_raw`, see its SOURCE.md). Built by `data_prep/coat.py`:",
        "",
        "```",
        command,
        "```",
        "",
        "**Derivation:**",
        "- positives: ratings >= 4.",
        f"- items: the {len(split.kept_items)} raw columns with a positive in either matrix, "
        f"numbered in ascending raw order (dropped: {', '.join(map(str, dropped))}); "
        "the same numbering as `coat` (the shipped split). Users keep their raw row index.",
        "- train + valid: exactly train.ascii's positives (the shipped split also puts 11 "
        "test-only pairs into train; results/coat_rebuilt.md lists them).",
        f"- valid: one random positive per user and per item stays in train; of the others, "
        f"round({valid_share:g} * n) drawn uniformly (seed {seed}) go to valid "
        "(the shipped split's proportion, 553 of 1,916).",
        "- test_ood: test.ascii's positives; test_id: the same pairs (as shipped).",
        f"- {len(cold)} items have positives only in test.ascii, so no training pair here "
        f"(raw columns {', '.join(str(split.kept_items[i]) for i in cold)}; "
        f"{cold_pairs} test pairs). The loader warns about them; the shipped split "
        "gives each one a training pair taken from the test set.",
        "",
        *output.counts_table(_file_pairs(split)),
        "",
        "**License/terms:** no licence ships with Coat; cite the paper above.",
        "",
    ]
    return "\n".join(lines)


def _pair_set(split: SplitData, name: str) -> set[tuple[int, int]]:
    part = {"train": split.train, "valid": split.valid}.get(name) or split.tests[name]
    return set(zip(part.users().tolist(), part.items.tolist(), strict=True))


def compare_md(
    split: CoatSplit,
    ours: SplitData,
    shipped: SplitData,
    train_ratings: np.ndarray,
    test_ratings: np.ndarray,
    command: str,
) -> str:
    """The comparison report: counts per file, leaked pairs, item indexing.

    Args:
      split: the rebuild (raw item of each index).
      ours, shipped: the two splits as advjax loads them.
      train_ratings, test_ratings: float64 [rows, raw columns]; the raw matrices.
      command: the command that wrote the report.
    """
    names = ["train", "valid", "test_id", "test_ood"]
    ours_sets = {n: _pair_set(ours, n) for n in names}
    ship_sets = {n: _pair_set(shipped, n) for n in names}
    train_pos = split.train.keys() | split.valid.keys()
    test_pos = split.test.keys()

    rows = ["| file | shipped users / items / pairs | rebuilt users / items / pairs |"]
    rows.append("|---|---|---|")
    for n in names:
        cells = []
        for sets in (ship_sets, ours_sets):
            pairs = sets[n]
            cells.append(
                f"{len({u for u, _ in pairs})} / {len({i for _, i in pairs})} / {len(pairs):,}"
            )
        rows.append(f"| {n}.txt | {cells[0]} | {cells[1]} |")

    indexing_match = ship_sets["test_ood"] == test_pos and shipped.n_items == len(split.kept_items)
    shipped_tv = ship_sets["train"] | ship_sets["valid"]
    leaked = sorted(shipped_tv - train_pos)
    missing = sorted(train_pos - shipped_tv)
    test_only_items = sorted({i for _, i in test_pos} - {i for _, i in train_pos})
    leak_rows = [
        "| file | user | item | raw item | train.ascii | test.ascii |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for u, i in leaked:
        where = "train" if (u, i) in ship_sets["train"] else "valid"
        raw_item = int(split.kept_items[i])
        leak_rows.append(
            f"| {where} | {u} | {i} | {raw_item} | {train_ratings[u, raw_item]:g} | "
            f"{test_ratings[u, raw_item]:g} |"
        )
    ours_leak = (ours_sets["train"] | ours_sets["valid"]) - train_pos
    same_train = len(ours_sets["train"] & ship_sets["train"])
    same_valid = len(ours_sets["valid"] & ship_sets["valid"])
    same_test = "identical" if ship_sets["test_ood"] == ours_sets["test_ood"] else "DIFFERENT"
    lines = [
        "# Coat rebuilt from the rating matrices, against the shipped split",
        "",
        "```",
        command,
        "```",
        "",
        "Shipped: `../shared/data/coat` (= `advjax/data/datasets/coat`, AdvInfoNCE's files). "
        "Rebuilt: `advjax/data/datasets/coat_rebuilt` (`--dataset=coat_rebuilt`), "
        "built by `data_prep/coat.py` (its SOURCE.md says how).",
        "",
        "## Counts per file",
        "",
        *rows,
        "",
        "## Item indexing",
        "",
        (
            f"Matches: both keep the {len(split.kept_items)} raw columns with a rating >= 4 "
            "in either matrix, in ascending raw order, and the shipped test_ood.txt is "
            "exactly test.ascii's positives under the rebuilt numbering."
            if indexing_match
            else "Does NOT match: the shipped test_ood.txt is not test.ascii's positives "
            "under the rebuilt numbering."
        ),
        f"Users: both keep the raw row index ({shipped.n_users} shipped, {ours.n_users} rebuilt).",
        "",
        "## Where they differ",
        "",
        f"- train + valid: shipped {len(shipped_tv):,} pairs, rebuilt {len(train_pos):,} "
        f"(train.ascii's positives). The shipped split has {len(leaked)} pairs that are "
        f"not train.ascii positives (below) and lacks {len(missing)} that are.",
        f"- The {len(leaked)} leaked pairs are test.ascii positives (rating >= 4 there, "
        "unrated in train.ascii), one for each item "
        + (
            "that has positives only in test.ascii: exactly the "
            f"{len(test_only_items)} such items. So the shipped preprocessing moved one "
            "test pair per test-only item into train, presumably so that every item "
            "has a training pair; the pair also stays in test."
            if sorted({i for _, i in leaked}) == test_only_items
            and len({i for _, i in leaked}) == len(leaked)
            else "(not one per test-only item)."
        ),
        f"- Rebuilt: no leak ({len(ours_leak)} train/valid pairs outside train.ascii's "
        f"positives). Its {len(test_only_items)} test-only items have no training pair "
        "(cold in test; the loader warns).",
        f"- The train/valid draw differs (the shipped seed is unknown): of the pairs both "
        f"hold, {same_train:,} are in train in both and {same_valid:,} in valid in both; "
        f"valid holds {len(ship_sets['valid']):,} pairs shipped, "
        f"{len(ours_sets['valid']):,} rebuilt.",
        f"- test_id = test_ood in both ({same_test} pairs in the two splits).",
        f"- Pairs in both train+valid and test: shipped "
        f"{len(shipped_tv & ship_sets['test_ood'])}, rebuilt "
        f"{len(train_pos & test_pos)} (user rated the item >= 4 in both matrices).",
        "",
        "## The leaked pairs (shipped split)",
        "",
        "Ids are the shipped/rebuilt numbering; raw item is the Coat column; ratings as "
        "in the raw matrices (0 = unrated).",
        "",
        *leak_rows,
        "",
    ]
    return "\n".join(lines)


def dense(table: raw.Table, shape: tuple[int, int]) -> np.ndarray:
    """A parsed matrix back as float64 [rows, columns]."""
    matrix = np.zeros(shape)
    matrix[table.users.astype(np.int64), table.items.astype(np.int64)] = table.ratings
    return matrix


def define_flags() -> None:
    """Defines the CLI's flags (only when run as a program)."""
    flags.DEFINE_string("raw", None, "Directory with Coat's train.ascii and test.ascii.")
    flags.DEFINE_string("out", None, "The split directory to write.")
    flags.DEFINE_float("min_rating", 4, "Positives: rating >= this.")
    flags.DEFINE_float("valid_share", 0.29, "Share of train.ascii's positives for valid.")
    flags.DEFINE_integer("seed", 0, "Seed of the valid draw.")
    flags.DEFINE_string("compare", "", "The shipped split directory to compare with.")
    flags.DEFINE_string("report", "", "Markdown report of the comparison (needs --compare).")
    flags.DEFINE_bool("overwrite", False, "Replace --out if it exists.")


def main(argv: list[str]) -> None:
    del argv
    flag_values = flags.FLAGS
    for name in ("raw", "out"):
        if flag_values[name].value is None:
            raise ConfigError(f"--{name} is required")
    if flag_values.report and not flag_values.compare:
        raise ConfigError("--report needs --compare (the shipped split)")
    out = output.check_out(flag_values.out, overwrite=flag_values.overwrite)
    raw_dir = pathlib.Path(flag_values.raw)
    train_table = raw.read_table(raw_dir / "train.ascii", "matrix")
    test_table = raw.read_table(raw_dir / "test.ascii", "matrix")
    split = rebuild(
        train_table,
        test_table,
        min_rating=flag_values.min_rating,
        valid_share=flag_values.valid_share,
        seed=flag_values.seed,
    )
    command = cli.command_line("data_prep.coat")
    files = split_files(split)
    files["SOURCE.md"] = source_md(split, command, flag_values.valid_share, flag_values.seed)
    output.write_split_dir(out, files, overwrite=flag_values.overwrite)
    print(f"{out}: train {len(split.train)}, valid {len(split.valid)}, test {len(split.test)}")
    if flag_values.compare:
        n_cols = (
            int(
                max(
                    train_table.items.astype(np.int64).max(),
                    test_table.items.astype(np.int64).max(),
                )
            )
            + 1
        )
        shape = (split.n_users, n_cols)
        report = compare_md(
            split,
            load_split_dir(out, warn=lambda line: None),
            load_split_dir(flag_values.compare, warn=lambda line: None),
            dense(train_table, shape),
            dense(test_table, shape),
            command,
        )
        if flag_values.report:
            write_atomically(flag_values.report, report)
            print(f"{flag_values.report}: the comparison")
        else:
            print(report)


if __name__ == "__main__":
    define_flags()
    cli.run_main(main)
