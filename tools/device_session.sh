#!/usr/bin/env bash
# One lent-GPU session's work, run by the device tool on the card (never here: it links
# ../shared/data and stops leftover experiments processes). See WORKSPACE.md, "Running
# on a GPU host".
#
#   END=560 TABLE=yelp2018 bash tools/device_session.sh      (carry: .devdata, .whl)
#
# Here, first: `bash tools/device_prepare.sh` (the data and the one missing wheel).
# On the card, within END seconds of its start, it
#   1. times the propagation paths on the table's dataset (first call only) and makes
#      the fastest device path the GPU default of the later commands when its
#      forward+backward beats `bcoo` by 20 % and agrees with it to 1e-3: it exports
#      ADVJAX_PROPAGATION=gpu=PATH (advjax/models/propagation.py reads it before its
#      DEFAULT_METHOD table; no source file is rewritten; results.json records the path);
#   2. continues the table's sweep (`experiments.reproduce --published`: the runs kept in
#      results/TABLE.json are not retrained) until END - 60 s;
#   3. rewrites the table from every finished run (--report_only --published);
#   4. with over 150 s left, runs the test suite (-v, so a cut run still names its tests).
# What comes back in $OUT: the table's .md and .json (with the new runs' records), the
# finished runs' small files (runs.tgz), and the logs. A second call on the still-warm
# machine resumes cut runs from their checkpoints and skips step 1 but keeps its choice
# (runs/devlogs/choice.txt). SKIP_BENCH=1 skips step 1 (saves about a minute of the
# lease) and runs what `auto` resolves to: the committed DEFAULT_METHOD, or the path the
# caller names, e.g. `ADVJAX_PROPAGATION=gpu=csr SKIP_BENCH=1 END=560 bash ...`. Without
# SKIP_BENCH the benchmark's pick replaces a given ADVJAX_PROPAGATION.
set -uo pipefail

if [ -z "${OUT:-}" ] || ! command -v nvidia-smi >/dev/null; then
    echo "tools/device_session.sh: for a lent GPU machine only (\$OUT and nvidia-smi)" >&2
    exit 2
fi
start=$(date +%s)
END=${END:-560}
TABLE=${TABLE:-yelp2018}
DATA=${DATA:-yelp2018.new}
left() { echo $((END - ($(date +%s) - start))); }

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 JAX_DEFAULT_MATMUL_PRECISION=highest
if [ ! -e ../shared/data ]; then
    mkdir -p ../shared && ln -sfn "$PWD/.devdata/data" ../shared/data
fi
pkill -f 'experiments\.(run|search|reproduce)' && sleep 2
mkdir -p runs/devlogs
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv | tee "$OUT/gpu.txt"

if [ -n "${SKIP_BENCH:-}" ]; then
    # What the runs will use; a bad ADVJAX_PROPAGATION stops here, not in every run.
    resolve='from advjax.models.propagation import resolve_method; print(resolve_method("auto"))'
    if ! auto=$(python3 -c "$resolve" 2>runs/devlogs/resolve.err); then
        tail -1 runs/devlogs/resolve.err >&2
        exit 1
    fi
    echo "propagation benchmark skipped; auto resolves to $auto" \
        "(ADVJAX_PROPAGATION=${ADVJAX_PROPAGATION:-unset}, else DEFAULT_METHOD)" |
        tee -a runs/devlogs/propagation.txt
else
    if [ ! -e runs/devlogs/propagation.txt ]; then
        timeout 150 python3 -m benchmarks.propagation --data_dir="../shared/data/$DATA" \
            --repeats=20 --pick_to=runs/devlogs/choice.txt 2>&1 | grep -v '^WARNING' |
            tee runs/devlogs/propagation.txt
    fi
    choice=$(cat runs/devlogs/choice.txt 2>/dev/null || echo bcoo)
    case $choice in bcoo | segment_sum | csr) ;; *) choice=bcoo ;; esac  # device paths only
    export ADVJAX_PROPAGATION="gpu=$choice"  # data for the later commands, not a source edit
    echo "GPU propagation for this session: ADVJAX_PROPAGATION=$ADVJAX_PROPAGATION" |
        tee -a runs/devlogs/propagation.txt
fi
cp runs/devlogs/propagation.txt "$OUT/"

timeout --signal=TERM $(($(left) - 60)) python3 -m experiments.reproduce --table="$TABLE" \
    --seeds=5 --published 2>&1 | grep -v '^WARNING' | tee -a runs/devlogs/sweep.log
python3 -m experiments.reproduce --table="$TABLE" --seeds=5 --published --report_only \
    2>&1 | tail -3 | tee -a runs/devlogs/sweep.log
cp "results/$TABLE.md" "results/$TABLE.json" runs/devlogs/sweep.log "$OUT/"
mkdir -p runs/reproduce
find runs/reproduce -name results.json -printf '%h\n' | while read -r dir; do
    ls "$dir"/results.json "$dir"/metrics.jsonl "$dir"/config.json
done | tar czf "$OUT/runs.tgz" -T -

if [ "$(left)" -gt 150 ]; then
    workers=$(python3 -c 'import xdist' 2>/dev/null && echo "-n 8")
    timeout $(($(left) - 15)) python3 -m pytest -v -rf $workers -p no:cacheprovider 2>&1 |
        grep -v -E '^WARNING|PASSED' > "$OUT/pytest.log"
    tail -5 "$OUT/pytest.log"
fi
echo "device_session.sh: done with $(left) s of END left"
