#!/usr/bin/env bash
# Everything that needs a CUDA GPU, in one go (about 12 minutes on one H100):
#   1. the tests marked gpu: bf16 autocast, fused AdamW, torch.compile, a 1-process nccl torchrun;
#   2. config/train_shakespeare_char.py to the end, timed;
#   3. time to val loss 1.47 on that config: the default recipe against the fast one (Muon,
#      rotary embeddings, QK-norm, untied zero-init head, softcap, wsd), evaluating every 100
#      iterations, compilation included;
#   4. bench.py on the GPT-2 124M config, at micro-batches 12, 16, 24 and 32;
#   5. GPT-2 124M and 350M under fsdp against ddp (scripts/bench_parallel.py, bfloat16, compiled),
#      on 1 GPU, or on 2 and 4 where the machine has them: per rank, max_memory_allocated while
#      building (FSDP's goal: 1/N of the model) and in training, ms/iter and MFU (about 4 minutes
#      more on one GPU).
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

# seconds from the log's start to the first evaluation at or below 1.47 (compilation included)
to_loss() { $PY -c 'import sys; from logger import read_log; r = read_log(sys.argv[1])
hit = [s for s in r.steps if s.val_loss is not None and s.val_loss <= 1.47]
print(f"time to val 1.47: {(hit[0].time - r.started).total_seconds():.0f} s at step {hit[0].iter}" if hit
      else f"time to val 1.47: not reached (best {min(s.val_loss for s in r.steps):.4f})")' "$(ls "$1"/log_run_*.txt)"; }
fast=(--optimizer=muon --muon_lr=0.02 --learning_rate=4e-3 --rope=True --qk_norm=True --tie_weights=False
      --zero_init=True --logit_softcap=15.0 --lr_schedule=wsd --warmup_iters=100 --warmdown_iters=750
      --max_iters=1500 --lr_decay_iters=1500 --min_lr=0.0)
step default_to_1.47 '^step [0-9]+:' $PY train.py config/train_shakespeare_char.py --eval_interval=100 \
    --max_iters=2500 --out_dir="$work/out-default" --log_dir="$work/logs-default"
summary+=("default_to_1.47: $(to_loss "$work/logs-default")")
step fast_to_1.47 '^step [0-9]+:' $PY train.py config/train_shakespeare_char.py --eval_interval=100 \
    "${fast[@]}" --out_dir="$work/out-fast" --log_dir="$work/logs-fast"
summary+=("fast_to_1.47: $(to_loss "$work/logs-fast")")

for b in 12 16 24 32; do
    step "bench_gpt2_124M_batch$b" '^bench:' $PY bench.py --batch_size=$b
done

gpus=$($PY -c 'import torch; print(torch.cuda.device_count())')
nprocs=$( ((gpus >= 4)) && echo 2,4 || { ((gpus >= 2)) && echo 2 || echo 1; })
for shape in "124M 12 768" "350M 24 1024"; do
    set -- $shape
    step "parallel_gpt2_$1" ' fsdp ' $PY scripts/bench_parallel.py --device=cuda --nprocs=$nprocs --n_layer="$2" \
        --n_embd="$3" --block_size=1024 --batch_size=12 --dtype=bfloat16 --compile=True --iters=10
    summary+=("parallel_gpt2_$1 (ddp): $(grep -E '^ +[0-9]+ +ddp ' "$work/parallel_gpt2_$1.txt" | tail -n 1)")
done

echo
echo "== GPU check summary ($gpu)"
printf '%s\n' "${summary[@]}"
