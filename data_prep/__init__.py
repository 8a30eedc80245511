"""From raw interaction logs to advjax split directories.

- ``python -m data_prep.convert``: a ratings file (CSV, TSV, MovieLens ``ratings.dat``,
  RecBole ``.inter``, a dense rating matrix) -> train/valid/test files with compact
  0-based ids, ``ids.json`` and ``SPLIT.md``.
- ``python -m data_prep.popularity_shift``: the paper's Tencent protocol (SPEC §4) on
  any split directory: test sets with a controlled popularity shift.
- ``python -m data_prep.coat``: Coat rebuilt from its original rating matrices, without
  the shipped split's test-to-train leak, and compared with the shipped split.

Parsing and splitting are pure functions over NumPy arrays (`raw`, `interactions`,
`popularity_shift`'s protocol, `coat`'s rebuild); reading and writing files happens in
`raw.read_table` and `output.write_split_dir` only.
"""
