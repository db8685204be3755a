#!/usr/bin/env bash
# Run every benchmark in bench/ with the venv's python, from the repo root.
# Each benchmark prints its figures and a `budget: … -> PASS|FAIL` line; this exits 1 if any failed.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "no $PY: run \`make bench\` (it installs the venv first)" >&2
  exit 1
fi
# the benchmarks (bare_klein.py is the baseline server they start; common.py, throughput.py shared pieces)
BENCHMARKS=(bench/api_metadata.py bench/api_object.py bench/vdisk_lists.py bench/driver_restart.py
            bench/failure_detection.py bench/messages_fanout.py bench/task_roundtrip.py bench/nbd_ratio.py
            bench/storage_ops.py bench/storage_api.py)
status=0
for bench in "${BENCHMARKS[@]}"; do
  echo "### $bench"
  "$PY" "$bench" || status=1
done
exit "$status"
