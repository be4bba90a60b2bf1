#!/usr/bin/env bash
# Time to loss, side by side with nanoGPT on this machine, one run after the other on tiny
# shakespeare:
#   nanoGPT  nanoGPT's train.py with its README's CPU command ("baby GPT", eval_iters 20)
#   default  our train.py with the same arguments: nanoGPT's model and AdamW
#   fast     our train.py with config/train_shakespeare_char_cpu.py, the fast recipe
#
#   bash scripts/compare_nanogpt.sh /path/to/nanoGPT [MAX_ITERS, default 2000] [--key=value ...]
#
# Extra --key=value arguments go to the nanoGPT and default runs. Needs data/shakespeare_char
# prepared from tiny shakespeare (copy it to data/shakespeare_char/input.txt, then
# python data/shakespeare_char/prepare.py). For each run it prints the wall time from process
# start to exit (evaluations and checkpoint saves included), the median ms/iter of its progress
# lines, the last val loss it printed (an estimate over eval_iters random batches), and the
# final model's loss over every 4th window of val.bin, which is what those estimates estimate,
# without their noise.
set -eu
nanogpt=$(cd "${1:?usage: $0 NANOGPT_DIR [MAX_ITERS] [--key=value ...]}" && pwd)
iters=${2:-2000}
shift $(( $# < 2 ? $# : 2 ))
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
work=$(mktemp -d)
mkdir -p "$nanogpt/data/shakespeare_char"
cp data/shakespeare_char/train.bin data/shakespeare_char/val.bin data/shakespeare_char/meta.pkl "$nanogpt/data/shakespeare_char/"
# nanoGPT's README command; always_save_checkpoint makes the checkpoint left behind the final
# model, whatever the noisy estimates did (nanoGPT saves at nearly every evaluation anyway)
args=(config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20 --log_interval=1
      --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters="$iters"
      --lr_decay_iters="$iters" --dropout=0.0 --always_save_checkpoint=True "$@")

timed() { # name dir command...: runs the command in dir, output to $work/name.txt, wall time to $work/name.wall
    local name=$1 dir=$2; shift 2
    local t0; t0=$(date +%s.%N)
    (cd "$dir" && "$@") > "$work/$name.txt" 2>&1
    echo "$(date +%s.%N) - $t0" | bc > "$work/$name.wall"
}

summarise() { # name checkpoint [baseline-name]
    $PY - "$work" "$@" <<'PYEOF'
import re, statistics, sys
import numpy as np, torch
from model import GPT, GPTConfig
work, name, ckpt_path = sys.argv[1:4]
text = open(f'{work}/{name}.txt').read()
wall = float(open(f'{work}/{name}.wall').read())
ms = [float(t) for t in re.findall(r'^iter \d+: loss \S+, time ([\d.]+)ms', text, re.M)]
val = re.findall(r'^step (\d+): train loss \S+, val loss ([\d.]+)', text, re.M)[-1]
ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=True)
model = GPT(GPTConfig(**ckpt['model_args']))
model.load_state_dict({k.removeprefix('_orig_mod.'): v for k, v in ckpt['model'].items()})
model.eval()
data = torch.from_numpy(np.fromfile('data/shakespeare_char/val.bin', dtype=np.uint16).astype(np.int64))
T = ckpt['model_args']['block_size']
starts = torch.arange(0, len(data) - T, 4)
total = 0.0
with torch.no_grad():
    for chunk in starts.split(512):
        x = torch.stack([data[i:i+T] for i in chunk])
        y = torch.stack([data[i+1:i+1+T] for i in chunk])
        logits, _ = model(x, y)
        total += torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction='sum').item()
ratio = ''
if len(sys.argv) > 4:
    ratio = f' ({wall / float(open(f"{work}/{sys.argv[4]}.wall").read()):.2f}x nanoGPT)'
print(f'{name:<8} wall {wall:6.1f} s{ratio:<16} median {statistics.median(ms[1:]) if len(ms) > 1 else float("nan"):6.2f} ms/iter, '
      f'printed val {val[1]} at step {val[0]}; final model over {len(starts)} val windows {total / (len(starts) * T):.4f}')
PYEOF
}

timed nanoGPT "$nanogpt" $PY train.py "${args[@]}" --out_dir="$work/nanoGPT-out"
timed default . $PY train.py "${args[@]}" --out_dir="$work/default-out" --log_dir="$work/logs"
timed fast . $PY train.py config/train_shakespeare_char_cpu.py --out_dir="$work/fast-out" --log_dir="$work/logs"
summarise nanoGPT "$work/nanoGPT-out/ckpt.pt"
summarise default "$work/default-out/ckpt.pt" nanoGPT
summarise fast "$work/fast-out/ckpt.pt" nanoGPT
