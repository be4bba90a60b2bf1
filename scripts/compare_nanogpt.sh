#!/usr/bin/env bash
# Side by side with nanoGPT on this machine: its CPU "baby GPT" on tiny shakespeare, run by
# nanoGPT's train.py and by ours, one after the other, with the same arguments and data.
#   bash scripts/compare_nanogpt.sh /path/to/nanoGPT [MAX_ITERS, default 2000] [--key=value ...]
# Extra --key=value arguments go to both (nanoGPT's README uses --eval_iters=20 on a CPU).
# Needs data/shakespeare_char prepared from tiny shakespeare (copy it to
# data/shakespeare_char/input.txt, then python data/shakespeare_char/prepare.py).
# Prints, for each: the median ms/iter of the progress lines, the last val loss the run
# printed (an estimate over eval_iters random batches), and the final model's loss over every
# 4th window of val.bin, which is what those estimates estimate, without their noise.
set -eu
nanogpt=$(cd "${1:?usage: $0 NANOGPT_DIR [MAX_ITERS]}" && pwd)
iters=${2:-2000}
shift $(( $# < 2 ? $# : 2 ))
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
work=$(mktemp -d)
mkdir -p "$nanogpt/data/shakespeare_char"
cp data/shakespeare_char/train.bin data/shakespeare_char/val.bin data/shakespeare_char/meta.pkl "$nanogpt/data/shakespeare_char/"
# always_save_checkpoint: the checkpoint left behind is the final model, whatever the estimates did
args=(config/train_shakespeare_char.py --device=cpu --compile=False --block_size=64 --batch_size=12
      --n_layer=4 --n_head=4 --n_embd=128 --dropout=0.0 --max_iters="$iters" --lr_decay_iters="$iters"
      --always_save_checkpoint=True "$@")

summarise() { # name output-file checkpoint
    $PY - "$@" <<'PYEOF'
import re, statistics, sys
import numpy as np, torch
from model import GPT, GPTConfig
name, text, ckpt_path = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
ms = [float(t) for t in re.findall(r'^iter \d+: loss \S+, time ([\d.]+)ms', text, re.M)]
val = re.findall(r'^step (\d+): train loss \S+, val loss ([\d.]+)', text, re.M)[-1]
ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=False)
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
print(f'{name:<8} median {statistics.median(ms[1:]):6.2f} ms/iter over {len(ms) - 1} progress lines, '
      f'val loss {val[1]} at step {val[0]}; final model over {len(starts)} val windows {total / (len(starts) * T):.4f}')
PYEOF
}

(cd "$nanogpt" && $PY train.py "${args[@]}" --out_dir="$work/nanogpt-out") > "$work/nanogpt.txt" 2>&1
$PY train.py "${args[@]}" --out_dir="$work/ours-out" --log_dir="$work/logs" > "$work/ours.txt" 2>&1
summarise nanoGPT "$work/nanogpt.txt" "$work/nanogpt-out/ckpt.pt"
summarise ours "$work/ours.txt" "$work/ours-out/ckpt.pt"
