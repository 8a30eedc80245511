"""The paper's Tencent popularity-shift protocol (SPEC §4) on any split directory.

  python -m data_prep.popularity_shift --split_dir=DIR --gammas=200,10,2 --out=DIR2

The pool is the directory's training pairs (``--pool=train``, the default: a debiasing
dataset's own test set is another distribution) or every pair of its files
(``--pool=all``). Items are sorted by their number of pool pairs, most popular first
(ties: lower id first), and cut into ``--groups`` groups of equal item counts (sizes
differ by at most one). For each gamma, group i (1-based) contributes

    N_i = N_0 * gamma ** (-(i - 1) / (groups - 1))

pairs, rounded to the nearest integer, drawn at random from the group's pairs, to the
test set test_ood_K.txt (K = the gamma's position in --gammas). N_0 is set per gamma
so that the test set holds --test_share of the pool. The sets are disjoint. Then
test_id.txt takes --id_share of the pool uniformly from what is left (so it follows
the training distribution), and the rest is split train:valid = --train_valid (60:10,
SPEC) at random, so validation mirrors training too. Before any draw, one random pair
of every user and one of every item are set aside for training, so every test user and
item is known to training. Users and items are renumbered 0.. in ascending old id
(ids.json maps old -> new; identity when nothing is dropped).

Writes train.txt, valid.txt, test_id.txt, test_ood_1..K.txt, ids.json, SPLIT.md (the
command, seed, N_0 per gamma, the counts) and shift.json (per-group target and drawn
counts), all at once. A group too small for its draws is a one-line error that names it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import flags

from advjax.data import load_split_dir
from advjax.errors import ConfigError
from data_prep import cli, interactions, output

FLAGS = flags.FLAGS

TRAIN, VALID, TEST_ID = 0, 1, 2  # test_ood_K is role 2 + K


@dataclasses.dataclass(frozen=True)
class Protocol:
    """The protocol's settings (the flags of the same names)."""

    gammas: tuple[float, ...] = (200.0, 10.0, 2.0)
    groups: int = 50
    test_share: float = 0.1
    id_share: float = 0.1
    valid_fraction: float = 10 / 70
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Shifted:
    """The redistributed pool.

    Attributes:
      roles: int8 [n]; TRAIN, VALID, TEST_ID or 2 + K for test_ood_K, per pool pair.
      item_group: int64 [n_items]; each item's 0-based group (-1: no pool pair).
      n0: N_0 per gamma.
      targets: float64 [n_gammas, groups]; N_i before rounding.
      drawn: int64 [n_gammas, groups]; pairs drawn per group.
    """

    roles: np.ndarray
    item_group: np.ndarray
    n0: np.ndarray
    targets: np.ndarray
    drawn: np.ndarray


def parse_ratio(text: str) -> float:
    """``"60:10"`` -> the valid fraction 10 / 70.

    Raises:
      ConfigError: not two non-negative numbers with a positive train part.
    """
    try:
        train, valid = (float(part) for part in text.split(":"))
    except ValueError:
        train, valid = -1.0, -1.0
    if not (train > 0 and valid >= 0):
        raise ConfigError(f"--train_valid must be TRAIN:VALID such as 60:10, got {text!r}")
    return valid / (train + valid)


def check_protocol(protocol: Protocol, n_items: int) -> None:
    """Raises ConfigError for settings out of range."""
    if not protocol.gammas or any(not g >= 1 for g in protocol.gammas):
        raise ConfigError(f"--gammas must be numbers >= 1, got {list(protocol.gammas)}")
    if protocol.groups < 2:
        raise ConfigError(f"--groups must be >= 2, got {protocol.groups}")
    if protocol.groups > n_items:
        raise ConfigError(f"--groups={protocol.groups} exceeds the pool's {n_items} items")
    shares = len(protocol.gammas) * protocol.test_share + protocol.id_share
    if not (0 < protocol.test_share and 0 <= protocol.id_share and shares < 1):
        raise ConfigError(
            f"--test_share={protocol.test_share} per gamma and --id_share={protocol.id_share}"
            " must be positive and sum to less than 1"
        )


def popularity_groups(items: np.ndarray, n_groups: int) -> np.ndarray:
    """Items by pool popularity into equal-count groups, most popular first.

    Args:
      items: int64 [n]; the item of each pool pair.
      n_groups: the number of groups.

    Returns:
      int64 [max item + 1]; each item's 0-based group, -1 for items without pairs.
    """
    degree = np.bincount(items)
    present = np.flatnonzero(degree)
    ranked = present[np.lexsort((present, -degree[present]))]
    group = np.full(len(degree), -1, dtype=np.int64)
    for g, members in enumerate(np.array_split(ranked, n_groups)):
        group[members] = g
    return group


def gamma_law(n0: float, gamma: float, n_groups: int) -> np.ndarray:
    """N_i = N_0 * gamma^(-(i-1)/(groups-1)) for i = 1..groups: float64 [groups].

    References:
      AdvInfoNCE (Zhai et al., NeurIPS 2023), the Tencent split (SPEC §4).
    """
    i = np.arange(n_groups, dtype=np.float64)
    return n0 * np.power(float(gamma), -i / (n_groups - 1))


def round_half_up(x: np.ndarray) -> np.ndarray:
    """Nearest integers, halves up: int64."""
    return np.floor(np.asarray(x) + 0.5).astype(np.int64)


def _take(candidates: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` of the candidate indices, uniformly without replacement."""
    return rng.choice(candidates, size=count, replace=False) if count else candidates[:0]


def redistribute(users: np.ndarray, items: np.ndarray, protocol: Protocol) -> Shifted:
    """The protocol of the module docstring on a pool of pairs.

    Args:
      users, items: int64 [n]; the pool, each pair once.
      protocol: the settings.

    Returns:
      The roles and the per-group accounting.

    Raises:
      ConfigError: settings out of range, or a group has fewer free pairs than its
        draws need (the message names the group).
    """
    n = len(users)
    check_protocol(protocol, len(np.unique(items)))
    rng = np.random.default_rng(protocol.seed)
    item_group = popularity_groups(items, protocol.groups)
    pair_group = item_group[items]
    free = ~interactions.reserve_for_training(users, items, rng)
    roles = np.full(n, TRAIN, dtype=np.int8)

    law = np.stack([gamma_law(1.0, g, protocol.groups) for g in protocol.gammas])
    n0 = protocol.test_share * n / law.sum(axis=1)
    targets = n0[:, None] * law
    drawn = round_half_up(targets)
    capacity = np.bincount(pair_group[free], minlength=protocol.groups)
    short = np.flatnonzero(drawn.sum(axis=0) > capacity)
    if short.size:
        g = short[0]
        # The share at which every group's draws fit (before rounding).
        per_share = (n * law / law.sum(axis=1, keepdims=True)).sum(axis=0)
        fits = (capacity / per_share).min()
        raise ConfigError(
            f"group {g + 1} of {protocol.groups} (items by popularity) has "
            f"{capacity[g]} pairs free for test, the gamma law needs "
            f"{int(drawn[:, g].sum())}; lower --test_share (about {fits:.3f} fits) "
            "or --groups"
        )
    for g in range(protocol.groups):
        candidates = np.flatnonzero(free & (pair_group == g))
        chosen = rng.permutation(candidates)[: drawn[:, g].sum()]
        for k, part in enumerate(np.split(chosen, np.cumsum(drawn[:, g])[:-1])):
            roles[part] = TEST_ID + 1 + k
            free[part] = False

    n_id = int(round_half_up(protocol.id_share * n))
    rest = np.flatnonzero(free)
    if n_id > len(rest):
        raise ConfigError(f"--id_share={protocol.id_share} needs {n_id} pairs, {len(rest)} free")
    chosen = _take(rest, n_id, rng)
    roles[chosen] = TEST_ID
    free[chosen] = False

    n_rest = int((roles == TRAIN).sum())
    n_valid = min(int(round_half_up(protocol.valid_fraction * n_rest)), int(free.sum()))
    roles[_take(np.flatnonzero(free), n_valid, rng)] = VALID
    return Shifted(roles=roles, item_group=item_group, n0=n0, targets=targets, drawn=drawn)


def file_names(n_gammas: int, with_id: bool) -> dict[int, str]:
    """Role -> file name."""
    names = {TRAIN: "train.txt", VALID: "valid.txt"}
    if with_id:
        names[TEST_ID] = "test_id.txt"
    names.update({TEST_ID + 1 + k: f"test_ood_{k + 1}.txt" for k in range(n_gammas)})
    return names


def pool_pairs(split_dir: str, pool: str) -> tuple[np.ndarray, np.ndarray]:
    """The pool of a split directory: its train pairs, or the union of every file's
    (each pair once)."""
    split = load_split_dir(split_dir, warn=lambda line: None)
    parts = [split.train]
    if pool == "all":
        parts += [p for p in (split.valid, *split.tests.values()) if p is not None]
    users = np.concatenate([p.users() for p in parts]).astype(np.int64)
    items = np.concatenate([p.items for p in parts]).astype(np.int64)
    keys = np.unique(users * split.n_items + items)
    return keys // split.n_items, keys % split.n_items


def shift_record(shifted: Shifted, protocol: Protocol, items: np.ndarray) -> dict:
    """shift.json: the settings and, per gamma, N_0 and each group's target and draws."""
    return {
        "gammas": list(protocol.gammas),
        "groups": protocol.groups,
        "seed": protocol.seed,
        "group_items": np.bincount(
            shifted.item_group[shifted.item_group >= 0], minlength=protocol.groups
        ).tolist(),
        "group_pairs": np.bincount(shifted.item_group[items], minlength=protocol.groups).tolist(),
        "test_ood": [
            {
                "file": f"test_ood_{k + 1}.txt",
                "gamma": gamma,
                "n0": float(shifted.n0[k]),
                "target": [round(float(t), 4) for t in shifted.targets[k]],
                "drawn": shifted.drawn[k].tolist(),
            }
            for k, gamma in enumerate(protocol.gammas)
        ],
    }


def split_md(
    command: str,
    protocol: Protocol,
    shifted: Shifted,
    files: dict[str, tuple[np.ndarray, np.ndarray]],
    pool: str,
) -> str:
    """SPLIT.md: the command, the protocol, N_0 per gamma and the counts per file."""
    gamma_rows = [
        f"| test_ood_{k + 1}.txt | {gamma:g} | {shifted.n0[k]:.2f} | "
        f"{shifted.drawn[k, 0]} | {shifted.drawn[k, -1]} | {shifted.drawn[k].sum():,} |"
        for k, gamma in enumerate(protocol.gammas)
    ]
    lines = [
        "# Popularity-shift split (SPEC §4, the Tencent protocol)",
        "",
        "```",
        command,
        "```",
        "",
        f"- pool: the source's {'train file' if pool == 'train' else 'files, all pairs'}",
        f"- {protocol.groups} item groups by pool popularity, most popular first; group i "
        f"gives N_i = N_0 * gamma^(-(i-1)/{protocol.groups - 1}) pairs (nearest integer)",
        f"- each test_ood file: {protocol.test_share:g} of the pool; test_id: "
        f"{protocol.id_share:g}, uniform over the rest; valid: {protocol.valid_fraction:.4f} "
        "of what is left, uniform",
        "- one pair of every user and item reserved for training before the draws",
        f"- seed: {protocol.seed}; per-group targets and draws in shift.json",
        "",
        "| file | gamma | N_0 | group 1 | last group | pairs |",
        "|---|---:|---:|---:|---:|---:|",
        *gamma_rows,
        "",
        *output.counts_table(files),
        "",
    ]
    return "\n".join(lines)


def _gammas(values: list[str]) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in values)
    except ValueError as e:
        raise ConfigError(f"--gammas must be numbers, got {','.join(values)}") from e


def define_flags() -> None:
    """Defines the CLI's flags (called only when run as a program, so the modules
    import side by side)."""
    flags.DEFINE_string("split_dir", None, "The split directory whose pairs are redistributed.")
    flags.DEFINE_list("gammas", ["200", "10", "2"], "Shift strengths, one test_ood_K per gamma.")
    flags.DEFINE_integer("groups", 50, "Item popularity groups.")
    flags.DEFINE_float("test_share", 0.1, "Each test_ood_K's share of the pool.")
    flags.DEFINE_float("id_share", 0.1, "test_id's share of the pool (0: no test_id).")
    flags.DEFINE_string("train_valid", "60:10", "How the rest is split, train:valid.")
    flags.DEFINE_enum("pool", "train", ["train", "all"], "Pairs to redistribute.")
    flags.DEFINE_integer("seed", 0, "Seed of every draw.")
    flags.DEFINE_string("out", None, "The split directory to write (must not exist).")
    flags.DEFINE_bool("overwrite", False, "Replace --out if it exists.")


def main(argv: list[str]) -> None:
    del argv  # all in flags
    for name in ("split_dir", "out"):
        if FLAGS[name].value is None:
            raise ConfigError(f"--{name} is required")
    out = output.check_out(FLAGS.out, overwrite=FLAGS.overwrite)
    protocol = Protocol(
        gammas=_gammas(FLAGS.gammas),
        groups=FLAGS.groups,
        test_share=FLAGS.test_share,
        id_share=FLAGS.id_share,
        valid_fraction=parse_ratio(FLAGS.train_valid),
        seed=FLAGS.seed,
    )
    users, items = pool_pairs(FLAGS.split_dir, FLAGS.pool)
    shifted = redistribute(users, items, protocol)
    # Every pool user and item has a training pair (reserved); renumber compactly.
    new_users, old_users = interactions.compact(users, np.ones(len(users), dtype=bool))
    new_items, old_items = interactions.compact(items, np.ones(len(items), dtype=bool))
    names = file_names(len(protocol.gammas), protocol.id_share > 0)
    pairs = {
        name: (new_users[shifted.roles == role], new_items[shifted.roles == role])
        for role, name in names.items()
    }
    files = {name: interactions.adjacency_text(u, i) for name, (u, i) in pairs.items()}
    files["ids.json"] = output.json_text(
        {
            "users": {str(old): new for new, old in enumerate(old_users.tolist())},
            "items": {str(old): new for new, old in enumerate(old_items.tolist())},
        }
    )
    files["shift.json"] = output.json_text(shift_record(shifted, protocol, items))
    command = cli.command_line("data_prep.popularity_shift")
    files["SPLIT.md"] = split_md(command, protocol, shifted, pairs, FLAGS.pool)
    output.write_split_dir(out, files, overwrite=FLAGS.overwrite)
    sizes = ", ".join(f"{name} {len(u):,}" for name, (u, _) in pairs.items())
    print(f"{out}: {sizes}")


if __name__ == "__main__":
    define_flags()
    cli.run_main(main)
