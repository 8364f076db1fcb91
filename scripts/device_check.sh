#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one short run on a lent GPU machine:
#   device run:  bash scripts/device_check.sh        (timeout_s 540; logs come back from $OUT)
# That machine's python3 holds a CUDA build of torch with numpy, Pillow and pytest, which is all these need, so
# cleanfit runs from src/ as it is: nothing installed, nothing fetched. In order, each under its own limit:
#   1. the CUDA tests (tests/training/test_cuda.py, test_trainer_cuda.py);
#   2. bench_loading.py's GPU rows: Batches(workers=W, pin_memory=True) against DataLoader(num_workers=W,
#      pin_memory=True), each batch copied to the device, W from 0 up to the core count;
#   3. bench_precision_gpu.py (bf16 against fp32 through the Trainer, beside a hand-written loop).
# A dry run here: DEVICE=cpu WORKERS="0 2" IMAGES=512 bash scripts/device_check.sh
set -uo pipefail
out=${OUT:-device-out}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
cores=$(nproc)
workers=${WORKERS:-$(printf '%s ' 0 2 4 8 $((cores * 3 / 4)) "$cores" | tr ' ' '\n' | awk '$1 <= '"$cores"'' | sort -nu | tr '\n' ' ')}
status=0
step() {  # step NAME SECONDS COMMAND...: one check, its log in $out/NAME.txt, its exit status remembered
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc"
    [ "$rc" -eq 0 ] || status=1
}
step env 30 "$py" -c "import os, torch; print(torch.__version__, os.cpu_count(), 'cores',
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
step cuda_tests 200 "$py" -m pytest -q -p no:cacheprovider -o addopts= tests/training/test_cuda.py \
    tests/training/test_trainer_cuda.py
# shellcheck disable=SC2086  # the worker counts are separate arguments
step bench_loading 220 "$py" benchmarks/bench_loading.py --device "$device" --workers $workers \
    --images "${IMAGES:-8192}" --repeats 3
if [ "$device" = cuda ]; then
    step bench_precision_gpu 90 "$py" benchmarks/bench_precision_gpu.py
fi
exit "$status"
