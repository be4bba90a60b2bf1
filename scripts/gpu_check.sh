#!/usr/bin/env bash
# Everything that needs a CUDA GPU, in one go (about 8 minutes on one H100):
#   1. the tests marked gpu: bf16 autocast, fused AdamW, torch.compile, a 1-process nccl torchrun;
#   2. config/train_shakespeare_char.py to the end, timed;
#   3. bench.py on the GPT-2 124M config.
# It ends with a summary. Usage: bash scripts/gpu_check.sh   (PYTHON=... picks the interpreter)
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
work=$(mktemp -d)
summary=()

step() { # step NAME PATTERN CMD...: run CMD, keep its last line matching PATTERN for the summary
    local name=$1 pattern=$2; shift 2
    echo "== $name: $*"
    local t0=$SECONDS
    "$@" 2>&1 | tee "$work/$name.txt"
    local rc=${PIPESTATUS[0]}
    summary+=("$name: exit $rc in $((SECONDS - t0))s | $(grep -E "$pattern" "$work/$name.txt" | tail -n 1)")
}

$PY -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || { echo "no CUDA GPU here"; exit 2; }
gpu=$($PY -c 'import torch; print(torch.cuda.get_device_name(), "| torch", torch.__version__)')
echo "== $gpu"

step gpu_tests 'passed|failed|error|skipped' $PY -m pytest -m gpu -q -p no:cacheprovider tests/test_model.py tests/test_distributed.py
[ -f data/shakespeare_char/train.bin ] || $PY data/shakespeare_char/prepare.py
step shakespeare_char '^step [0-9]+:' $PY train.py config/train_shakespeare_char.py \
    --out_dir="$work/out" --log_dir="$work/logs"
step runs_summary 'completed|failed|interrupted|terminated|running|killed|ended' $PY runs.py "$work/logs"
step bench_gpt2_124M '^bench:' $PY bench.py

echo
echo "== GPU check summary ($gpu)"
printf '%s\n' "${summary[@]}"
