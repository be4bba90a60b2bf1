#!/usr/bin/env bash
# Side by side with nanoGPT on this machine: its CPU "baby GPT" on tiny shakespeare, run by
# nanoGPT's train.py and by ours, one after the other, with the same arguments and data.
#   bash scripts/compare_nanogpt.sh /path/to/nanoGPT [MAX_ITERS, default 2000] [--key=value ...]
# Extra --key=value arguments go to both (nanoGPT's README uses --eval_iters=20 on a CPU).
# Needs data/shakespeare_char prepared from tiny shakespeare (copy it to
# data/shakespeare_char/input.txt, then python data/shakespeare_char/prepare.py).
# Prints the median ms/iter of the progress lines and the last val loss of each.
set -eu
nanogpt=$(cd "${1:?usage: $0 NANOGPT_DIR [MAX_ITERS]}" && pwd)
iters=${2:-2000}
shift $(( $# < 2 ? $# : 2 ))
cd "$(dirname "$0")/.."
here=$(pwd)
PY=${PYTHON:-python}
work=$(mktemp -d)
mkdir -p "$nanogpt/data/shakespeare_char"
cp data/shakespeare_char/train.bin data/shakespeare_char/val.bin data/shakespeare_char/meta.pkl "$nanogpt/data/shakespeare_char/"
args=(config/train_shakespeare_char.py --device=cpu --compile=False --block_size=64 --batch_size=12
      --n_layer=4 --n_head=4 --n_embd=128 --dropout=0.0 --max_iters="$iters" --lr_decay_iters="$iters" "$@")

summarise() { # name output-file
    $PY - "$1" "$2" <<'PYEOF'
import re, statistics, sys
name, text = sys.argv[1], open(sys.argv[2]).read()
ms = [float(t) for t in re.findall(r'^iter \d+: loss \S+, time ([\d.]+)ms', text, re.M)]
val = re.findall(r'^step (\d+): train loss \S+, val loss ([\d.]+)', text, re.M)[-1]
print(f'{name:<8} median {statistics.median(ms[1:]):6.2f} ms/iter over {len(ms) - 1} progress lines, '
      f'val loss {val[1]} at step {val[0]}')
PYEOF
}

(cd "$nanogpt" && $PY train.py "${args[@]}" --out_dir="$work/nanogpt-out") > "$work/nanogpt.txt" 2>&1
$PY train.py "${args[@]}" --out_dir="$work/ours-out" --log_dir="$work/logs" > "$work/ours.txt" 2>&1
summarise nanoGPT "$work/nanogpt.txt"
summarise ours "$work/ours.txt"
