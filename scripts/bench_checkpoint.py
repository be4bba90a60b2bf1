"""
What checked checkpoints cost: checkpoint.py against the plain torch.save and torch.load of before.

    python scripts/bench_checkpoint.py [--rounds=3] [--n_layer=12] [--n_embd=768]

The checkpoint is GPT-2 124M's by default, weights and AdamW state (1.5 GB), in a temporary
directory. Each round saves it the old way (torch.save to a temporary file, fsync, rename) and
with write_checkpoint (sha256 in the same pass, the NaN check, the sums file, the previous file
kept), then loads it with torch.load and with load_checkpoint (sha256 first); the median round counts.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint import load_checkpoint, write_checkpoint  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument('--rounds', type=int, default=3)
parser.add_argument('--n_layer', type=int, default=12)
parser.add_argument('--n_embd', type=int, default=768)
args = parser.parse_args()

model = GPT(GPTConfig(n_layer=args.n_layer, n_embd=args.n_embd, n_head=max(1, args.n_embd // 64)))
optimizer = torch.optim.AdamW(model.parameters())
for p in model.parameters():
    p.grad = torch.zeros_like(p)
optimizer.step() # the AdamW state: two more tensors the size of the weights
checkpoint = {'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'model_args': {}, 'iter_num': 1}
out_dir = tempfile.mkdtemp(prefix='bench_checkpoint_')
path = os.path.join(out_dir, 'ckpt.pt')


def plain_save():
    with open(path + '.tmp', 'wb') as f:
        torch.save(checkpoint, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + '.tmp', path)
    fd = os.open(out_dir, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


cases = {'save: torch.save, fsync, rename': plain_save,
         'save: write_checkpoint': lambda: write_checkpoint(checkpoint, out_dir),
         'load: torch.load': lambda: torch.load(path, weights_only=True),
         'load: load_checkpoint': lambda: load_checkpoint(out_dir)}
times = {name: [] for name in cases}
try:
    for _ in range(args.rounds):
        for name, case in cases.items():
            t0 = time.perf_counter()
            case()
            times[name].append(time.perf_counter() - t0)
    print(f'checkpoint of {model.get_num_params() / 1e6:.0f}M parameters: {os.path.getsize(path) / 1e9:.2f} GB, '
          f'median of {args.rounds} rounds')
    for name, values in times.items():
        print(f'  {name:32s} {statistics.median(values):6.2f} s   ({", ".join(f"{v:.2f}" for v in values)})')
finally:
    shutil.rmtree(out_dir)
