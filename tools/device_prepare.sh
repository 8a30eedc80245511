#!/usr/bin/env bash
# Here, before a lent-GPU session: puts what tools/device_session.sh needs on the card
# and what does not travel with the repo into git-excluded folders, to be carried:
# .devdata/data (a copy of ../shared/data, 30 MB) and .whl (tensorboardX, the one
# dependency the card's image lacks). Then call the device tool's run with
#   command: END=560 bash tools/device_session.sh    carry: [".devdata", ".whl"]
set -euo pipefail
cd "$(dirname "$0")/.."
for dir in /.devdata/ /.whl/; do
    grep -qxF "$dir" .git/info/exclude 2>/dev/null || echo "$dir" >> .git/info/exclude
done
rm -rf .devdata/data .whl
mkdir -p .devdata
cp -rL ../shared/data .devdata/data
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl 'tensorboardX>=2.6'
du -sh .devdata .whl
