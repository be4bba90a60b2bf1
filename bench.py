"""
Measure training throughput: ms/iter, tokens/s, achieved TFLOP/s and, where the device's peak
is known, MFU. Takes train.py's model, data and system keys, in the same --key=value style.
Defaults are GPT-2 124M on synthetic data.

$ python bench.py                                       # GPT-2 124M, whatever device is here
$ python bench.py --real_data=True --dataset=shakespeare_char --n_layer=4 --n_head=4 --n_embd=128 --block_size=64

The last line is a summary for scripts:
bench: ms_per_iter=... tokens_per_s=... tflops=... mfu=... device=... dtype=... compile=...
"""
import os
import sys
import time
from contextlib import nullcontext

import numpy as np
import torch

from configurator import check, config_block, configure, die, resolve
from data.dataset import DatasetError, read_meta, token_dtype_of
from model import GPT, GPTConfig, peak_flops

# -----------------------------------------------------------------------------
# data
batch_size = 12 # windows in each iteration's batch
block_size = 1024 # context length: tokens in each window
real_data = False # True: batches from data/<dataset>/train.bin; False: random tokens
dataset = 'openwebtext' # the dataset real_data=True reads
vocab_size = 50304 # random tokens are drawn below it (real_data raises it to the data's largest token + 1)
# model, with train.py's keys and defaults
n_layer = 12 # transformer blocks
n_head = 12 # attention heads in each block
n_embd = 768 # width of the residual stream
dropout = 0.0 # dropout probability in training
bias = False # bias in the Linears and LayerNorms
rope = False # rotary position embeddings instead of a learned position table
qk_norm = False # RMS-normalise queries and keys before attention
mlp = 'gelu' # 'gelu' or 'relu2' (ReLU squared)
tie_weights = True # the output layer shares the token embedding's weights
zero_init = False # output projections, and an untied lm_head, start at zero
logit_softcap = 0.0 # > 0: logits = logit_softcap * tanh(logits / logit_softcap)
# optimizer, as in train.py
optimizer = 'adamw' # 'adamw', or 'muon': Muon for the blocks' 2-D weights, AdamW for the rest
learning_rate = 6e-4 # AdamW's learning rate (no schedule here)
muon_lr = 0.02 # learning rate of Muon's weights (optimizer='muon')
muon_momentum = 0.95 # Muon's Nesterov momentum
weight_decay = 1e-1 # AdamW's weight decay, of the matrices and embeddings only
beta1 = 0.9 # AdamW's beta1
beta2 = 0.95 # AdamW's beta2
# timing
burn_in = 10 # iterations before timing: compilation, allocator and cache warm-up
num_iters = 20 # timed iterations
# system
seed = 1337 # the weights' and the random batches' seed
device = 'auto' # 'cuda', then 'mps', then 'cpu'; or e.g. 'cpu', 'cuda:1'
dtype = 'auto' # bfloat16 where supported, else float16 on CUDA, float32 elsewhere
compile = 'auto' # torch.compile the model: on CUDA only
# -----------------------------------------------------------------------------
config_keys = config_block(__file__) # the names assigned above: nothing imported is a key
config = configure({k: globals()[k] for k in config_keys}, sys.argv[1:], __doc__, config_keys)
globals().update(config)
# -----------------------------------------------------------------------------

check(config) # every value against its rule in configurator.RULES, before any model exists
device, device_type, dtype, compile, _ = resolve(device, dtype, compile)
torch.manual_seed(seed)
torch.backends.cuda.matmul.allow_tf32 = True # allow tf32 on matmul
torch.backends.cudnn.allow_tf32 = True # allow tf32 on cudnn
ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}[dtype]
ctx = nullcontext() if dtype == 'float32' else torch.amp.autocast(device_type=device_type, dtype=ptdtype)

if real_data:
    path = os.path.join('data', dataset, 'train.bin')
    if not os.path.exists(path):
        die(f'{path} not found: prepare it with `python data/prepare.py YOUR_TEXT --dataset={dataset}`, '
            'or use --real_data=False')
    meta_path = os.path.join('data', dataset, 'meta.pkl')
    try: # the token files' dtype (uint16, or uint32 for a large vocabulary), from meta.pkl as plain data
        meta = read_meta(meta_path) if os.path.exists(meta_path) else None
    except DatasetError as e:
        die(e)
    data = np.memmap(path, dtype=token_dtype_of(meta), mode='r')
    if len(data) <= block_size:
        die(f'{path} holds {len(data)} tokens, too few for block_size={block_size}')
    vocab_size = max(vocab_size, int(data.max()) + 1)
def get_batch():
    if real_data:
        ix = torch.randint(len(data) - block_size, (batch_size,))
        x = torch.stack([torch.from_numpy((data[i:i+block_size]).astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy((data[i+1:i+1+block_size]).astype(np.int64)) for i in ix])
    else:
        x = torch.randint(vocab_size, (batch_size, block_size))
        y = torch.randint(vocab_size, (batch_size, block_size))
    if device_type == 'cuda':
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)

model = GPT(GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=n_layer, n_head=n_head,
                      n_embd=n_embd, dropout=dropout, bias=bias, rope=rope, qk_norm=qk_norm, mlp=mlp,
                      tie_weights=tie_weights, zero_init=zero_init, logit_softcap=logit_softcap))
model.to(device)
optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), device_type,
                                       optimizer, muon_lr, muon_momentum)
scaler = torch.amp.GradScaler(device_type, enabled=(dtype == 'float16'))
raw_model = model
if compile:
    print('compiling the model...', flush=True)
    model = torch.compile(model)

def sync():
    if device_type == 'cuda':
        torch.cuda.synchronize()
    elif device_type == 'mps':
        torch.mps.synchronize()

print(f'{raw_model.get_num_params() / 1e6:.2f}M parameters, batch {batch_size}x{block_size}, '
      f'device {device}, dtype {dtype}, compile {compile}, optimizer {optimizer.__class__.__name__}', flush=True)
X, Y = get_batch()
for stage, iters in (('burn-in', burn_in), ('timed', num_iters)):
    sync()
    t0 = time.perf_counter()
    for k in range(iters):
        with ctx:
            logits, loss = model(X, Y)
        X, Y = get_batch()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
    sync()
    dt = time.perf_counter() - t0
    if iters:
        print(f'{stage}: {iters} iterations, {dt / iters * 1000:.2f} ms/iter, loss {loss.item():.4f}')

dt = dt / num_iters
flops, mfu = raw_model.estimate_mfu(batch_size, dt, peak_flops(device, ptdtype))
tokens_per_s = batch_size * block_size / dt
print(f'{dt * 1000:.2f} ms/iter, {tokens_per_s:,.0f} tokens/s, {flops / 1e12:.2f} TFLOP/s achieved, '
      + (f'MFU {mfu * 100:.2f}%' if mfu is not None else 'MFU unknown (no peak known for this device)'))
print(f'bench: ms_per_iter={dt * 1000:.2f} tokens_per_s={tokens_per_s:.0f} tflops={flops / 1e12:.4f} '
      f"mfu={'%.2f' % (mfu * 100) if mfu is not None else 'na'} device={device} dtype={dtype} compile={compile}")
