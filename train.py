"""
Train a GPT, on a CPU, one GPU, or many through torchrun, and keep a log of the run.

One process (device, dtype and compile default to what the machine can do):
$ python train.py config/train_shakespeare_char_cpu.py --max_iters=500

DDP on 4 GPUs of one node (on CPUs too: the backend is gloo when there is no CUDA):
$ torchrun --standalone --nproc_per_node=4 train.py

DDP on 2 nodes of 8 GPUs, from the first (master) node with IP 123.456.123.456:
$ torchrun --nproc_per_node=8 --nnodes=2 --node_rank=0 --master_addr=123.456.123.456 --master_port=1234 train.py
and the same with --node_rank=1 on the second node.

SIGTERM or Ctrl-C stops at the end of the current iteration, cutting an evaluation short, with a
checkpoint to resume from (--init_from=resume); a second Ctrl-C stops at once. SIGUSR1 saves a
checkpoint at the end of the current iteration and trains on. Under torchrun --max-restarts or
SLURM's --requeue, run the same command with --init_from=auto: it resumes when out_dir holds a
checkpoint and starts from scratch otherwise.
"""

import hashlib
import importlib.util
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from checkpoint import CheckpointError, find_checkpoints, load_checkpoint, write_checkpoint
from configurator import GPT2_MODELS, check, configure, die, resolve
from data.dataset import DatasetError, dataset_tokenizer, provenance, read_meta, token_dtype_of
from logger import LogDirError, TrainingLogger, format_duration
from model import GPT, OPTIONS, GPTConfig, peak_flops

# -----------------------------------------------------------------------------
# default config values designed to train a gpt2 (124M) on OpenWebText
# I/O
out_dir = 'out'
eval_interval = 2000
log_interval = 1
eval_iters = 200
eval_only = False # if True, script exits right after the first eval
eval_on_start = True # evaluate before the first iteration too (False: a short run spends its time training)
eval_stride = 0 # 0: val loss over eval_iters random batches; N: over every window starting N tokens apart in val.bin, the same windows each time (N = block_size: all of val, each token once)
always_save_checkpoint = True # if True, always save a checkpoint after each eval
keep_previous_checkpoint = True # keep the checkpoint that ckpt.pt replaces as ckpt_prev.pt, to fall back on if ckpt.pt is damaged (twice the disk)
init_from = 'scratch' # 'scratch' or 'resume' or 'auto' (resume if out_dir holds a checkpoint, else scratch) or 'gpt2*'
# logging
log_dir = 'logs' # the run's log file goes here
file_logging = True
wandb_log = False # disabled by default
wandb_project = 'owt'
wandb_run_name = 'gpt2' # 'run' + str(time.time())
# data
dataset = 'openwebtext'
gradient_accumulation_steps = 5 * 8 # used to simulate larger batch sizes
batch_size = 12 # if gradient_accumulation_steps > 1, this is the micro-batch size
block_size = 1024
# model
n_layer = 12
n_head = 12
n_embd = 768
dropout = 0.0 # for pretraining 0 is good, for finetuning try 0.1+
bias = False # do we use bias inside LayerNorm and Linear layers?
# newer architecture options (nanochat, modded-nanogpt); the defaults are nanoGPT's GPT-2
rope = False # rotary position embeddings instead of a learned position table
qk_norm = False # RMS-normalise queries and keys before attention
mlp = 'gelu' # 'gelu' or 'relu2' (ReLU squared)
tie_weights = True # the output layer shares the token embedding's weights
zero_init = False # output projections, and an untied lm_head, start at zero
logit_softcap = 0.0 # > 0: logits = logit_softcap * tanh(logits / logit_softcap)
# optimizer
optimizer = 'adamw' # 'adamw', or 'muon': Muon for the blocks' 2-D weights, AdamW for the rest
learning_rate = 6e-4 # max learning rate (AdamW)
muon_lr = 0.02 # max learning rate of Muon's weights (optimizer='muon'); the schedule scales both
muon_momentum = 0.95 # Muon's Nesterov momentum
max_iters = 600000 # total number of training iterations
weight_decay = 1e-1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0 # clip gradients at this value, or disable if == 0.0
# learning rate decay settings
decay_lr = True # whether to decay the learning rate
lr_schedule = 'cosine' # after warmup: 'cosine' down to min_lr at lr_decay_iters, or 'wsd': constant, then linear down to min_lr over the last warmdown_iters before lr_decay_iters
warmup_iters = 2000 # how many steps to warm up for
lr_decay_iters = 600000 # should be ~= max_iters per Chinchilla
warmdown_iters = 0 # lr_schedule='wsd' only
min_lr = 6e-5 # minimum learning rate, should be ~= learning_rate/10 per Chinchilla
# DDP settings
backend = 'auto' # 'nccl' when the processes use CUDA, else 'gloo'
ddp_timeout = 600 # seconds a rank waits for the others in a collective before the run fails, instead of hanging for ever
# system
device = 'auto' # 'cuda', then 'mps', then 'cpu'; or e.g. 'cpu', 'cuda:1'
dtype = 'auto' # bfloat16 where supported, else float16 (with a GradScaler) on CUDA, float32 elsewhere
compile = 'auto' # torch.compile the model: on CUDA only
seed = 1337
# -----------------------------------------------------------------------------
config_keys = [k for k, v in globals().items() if not k.startswith('_') and isinstance(v, (int, float, bool, str))]
config = configure({k: globals()[k] for k in config_keys}, sys.argv[1:], __doc__)
globals().update(config)
# -----------------------------------------------------------------------------

# everything the user gave is checked here, before any process group, log file or model exists:
# first each value against its rule (configurator.RULES), then against this machine, the data
# and the checkpoint
check(config)
ddp = int(os.environ.get('RANK', -1)) != -1 # is this a ddp run?
rank = int(os.environ.get('RANK', 0))
local_rank = int(os.environ.get('LOCAL_RANK', 0))
world_size = int(os.environ.get('WORLD_SIZE', 1))
master_process = rank == 0 # this process will do logging, checkpointing etc.
device, device_type, dtype, compile, backend = resolve(device, dtype, compile, backend, local_rank if ddp else None)
if ddp and not {'MASTER_ADDR', 'MASTER_PORT'} <= os.environ.keys():
    die('RANK is set, but MASTER_ADDR and MASTER_PORT are not: start the processes with torchrun')
if gradient_accumulation_steps % world_size != 0:
    die(f'gradient_accumulation_steps={gradient_accumulation_steps} is not divisible by the world size '
        f'{world_size}; use a multiple of {world_size}')
gradient_accumulation_steps //= world_size
data_dir = os.path.join('data', dataset)
meta_path = os.path.join(data_dir, 'meta.pkl')
meta, meta_vocab_size = {}, None
try: # plain data only: a downloaded or shared dataset folder must not run code here
    if os.path.exists(meta_path):
        meta = read_meta(meta_path)
        meta_vocab_size = meta['vocab_size']
    token_bytes = torch.from_numpy(dataset_tokenizer(data_dir, meta).token_bytes()) # UTF-8 bytes of each id: val_bpb
except DatasetError as e:
    die(e)
data_dtype = token_dtype_of(meta) # uint16, or uint32 for a vocabulary that needs it
tokens = {}
for split in ('train', 'val'):
    path = os.path.join(data_dir, f'{split}.bin')
    if not os.path.exists(path):
        die(f'{path} not found: prepare the data first with `python data/prepare.py YOUR_TEXT --dataset={dataset}`'
            + (f', or with `python {data_dir}/prepare.py`'
               if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), data_dir, 'prepare.py')) else ''))
    tokens[split] = len(np.memmap(path, dtype=data_dtype, mode='r'))
    if tokens[split] <= block_size:
        die(f'{path} holds too few tokens for block_size={block_size}')
existing = os.path.abspath(out_dir) # out_dir is made only later: its nearest existing folder must allow it
while not os.path.exists(existing):
    existing = os.path.dirname(existing)
if not os.path.isdir(existing):
    die(f'out_dir {out_dir!r} cannot be a directory: {existing} is a file')
if not os.access(existing, os.W_OK | os.X_OK):
    die(f'out_dir {out_dir!r} cannot be written: no permission in {existing}')
ckpt_path = os.path.join(out_dir, 'ckpt.pt')
found = find_checkpoints(out_dir) # ckpt.pt, and ckpt_prev.pt where one is kept
if init_from == 'auto': # the same command line for a first start and for every restart
    init_from = 'resume' if found else 'scratch'
if init_from == 'resume' and not found:
    die(f'--init_from=resume: no checkpoint at {ckpt_path} (set --out_dir to the run to resume)')
if init_from != 'resume' and not eval_only and found:
    die(f'{found[0]} already holds a checkpoint: continue it with --init_from=resume, or with --init_from=auto '
        f'(resumes when out_dir holds a checkpoint, starts otherwise: for torchrun --max-restarts and SLURM '
        f'requeues), or pick another --out_dir')
if init_from == 'resume':
    # loaded here, not with the model, so that its shape can be checked against this command line; a
    # damaged checkpoint (its sha256 tells) is refused here, or an older intact one taken instead
    try:
        resume_path, checkpoint, resume_notes = load_checkpoint(out_dir, map_location=device)
    except CheckpointError as e:
        die(e)
    ckpt_args = checkpoint['model_args']
    if block_size > ckpt_args['block_size']:
        die(f"block_size must be at most {ckpt_args['block_size']}, the block size of {resume_path}, got {block_size}")
    if meta_vocab_size is not None and meta_vocab_size > ckpt_args['vocab_size']:
        die(f"dataset {dataset!r} has a vocabulary of {meta_vocab_size}, larger than the {ckpt_args['vocab_size']} "
            f"of the model in {resume_path}: resume on the dataset it was trained on")
if init_from in GPT2_MODELS and importlib.util.find_spec('transformers') is None:
    die(f'init_from={init_from!r} loads OpenAI weights through HuggingFace: pip install transformers')
if wandb_log and master_process:
    try:
        import wandb
    except ImportError:
        die('wandb_log=True needs the wandb package: pip install wandb')

logger = TrainingLogger(log_dir=log_dir, enabled=file_logging and master_process)
try:
    logger.setup(config)
except LogDirError as e:
    die(e)

# A stop request: SIGTERM (how SLURM and Kubernetes stop jobs) or Ctrl-C, and the status it gives the
# log's footer. Once the log exists, a request cuts an evaluation short and lets the current
# iteration end on every rank; the run then saves a checkpoint and exits with 128 + the signal.
# A second Ctrl-C stops at once.
stop_statuses = {signal.SIGTERM: 'terminated (SIGTERM)', signal.SIGINT: 'interrupted'}
stop_signal = 0
stop_time = 0.0
def request_stop(signum, frame):
    global stop_signal, stop_time
    # torchrun forwards the terminal's Ctrl-C to workers that already got it: a repeat within a
    # second is the same keypress, not a second one
    if signum == signal.SIGINT and stop_signal and time.time() - stop_time > 1.0:
        raise KeyboardInterrupt
    if not stop_signal:
        stop_signal, stop_time = signum, time.time()
        if master_process:
            print(f'{signal.Signals(signum).name}: stopping at the end of this iteration', flush=True)
for signum in stop_statuses:
    signal.signal(signum, request_stop)
# A save request: SIGUSR1, SLURM's warning before it preempts a job (sbatch --signal=USR1@90). The run
# saves a checkpoint at the end of the current iteration and trains on; an evaluation is not cut short.
save_requested = False
def request_save(signum, frame):
    global save_requested
    save_requested = True
signal.signal(signal.SIGUSR1, request_save)

# torchrun --max-restarts and SLURM --requeue count the times they started this job again
restart_count = int(os.environ.get('TORCHELASTIC_RESTART_COUNT', 0))
restarts = [f'{what} {n}' for what, n in (('torchrun restart', restart_count),
                                          ('SLURM requeue', int(os.environ.get('SLURM_RESTART_COUNT', 0)))) if n]
store = None # where ranks wait for rank 0 when it works alone (saves), outside any collective
if ddp:
    # a collective that waits longer than ddp_timeout for a rank raises, instead of hanging for ever.
    # torchrun restarts its workers on the store of its first attempt, where the dead workers'
    # addresses still are (pytorch/pytorch#167288): each attempt gets keys of its own.
    timeout = timedelta(seconds=ddp_timeout)
    torchrun_store = os.environ.get('TORCHELASTIC_USE_AGENT_STORE') == 'True' # torchrun hosts the store
    store = dist.PrefixStore(f'train/attempt_{restart_count}',
                             dist.TCPStore(os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT']), world_size,
                                           is_master=master_process and not torchrun_store, timeout=timeout))
    dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size, timeout=timeout)
    if device_type == 'cuda':
        torch.cuda.set_device(device)
seed_offset = rank # each process gets a different seed
tokens_per_iter = gradient_accumulation_steps * world_size * batch_size * block_size

def report(message):
    """Console and log alike."""
    if master_process:
        print(message)
    logger.log(message)

def code_version():
    """The git commit of the checkout that train.py is in, plus ' dirty' if tracked files changed;
    None outside git. One `git status` (a few ms); --no-optional-locks keeps it off the index lock."""
    try:
        git = subprocess.run(['git', '--no-optional-locks', 'status', '--porcelain=v2', '--branch',
                              '--untracked-files=no'], cwd=os.path.dirname(os.path.realpath(__file__)),
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = git.stdout.splitlines()
    commit = next((line[13:] for line in lines if line.startswith('# branch.oid ')), '(initial)')
    if git.returncode or commit == '(initial)':
        return None
    return commit + (' dirty' if any(not line.startswith('#') for line in lines) else '')

def fail(why):
    """End the run for a fault it can name: a line on stderr, the footer `failed: why`, exit status 1."""
    if master_process:
        print(f'train.py: failed: {why}', file=sys.stderr, flush=True)
    logger.close(status=f'failed: {why}')
    sys.exit(1)

logger.log(f'command: {shlex.join(sys.orig_argv)}')
logger.log(f'python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}')
if logger.path and (code := code_version()):
    logger.log(f'code: git {code}')
logger.log(f"data: {data_dir}, source {meta.get('source', 'not recorded')}, "
           f"train {tokens['train']:,} tokens, val {tokens['val']:,} tokens"
           + ''.join(f', {label} {text}' for label, text in provenance(meta)))
report(f'device: {device}, dtype: {dtype}, compile: {compile}, world_size: {world_size}, '
       f'backend: {backend if ddp else "none"}')
report(f'tokens per iteration will be: {tokens_per_iter:,}')
if restarts:
    report(f'this run is {" and ".join(restarts)} of its job')
if config['init_from'] == 'auto':
    report(f'init_from=auto: {found[0]} holds a checkpoint, resuming' if found else
           f'init_from=auto: no checkpoint in {out_dir}, starting from scratch')

if master_process:
    os.makedirs(out_dir, exist_ok=True)
torch.manual_seed(seed + seed_offset)
torch.backends.cuda.matmul.allow_tf32 = True # allow tf32 on matmul
torch.backends.cudnn.allow_tf32 = True # allow tf32 on cudnn
token_bytes = token_bytes.to(device)
ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}[dtype]
ctx = nullcontext() if dtype == 'float32' else torch.amp.autocast(device_type=device_type, dtype=ptdtype)

# Training batches are a pure function of (seed, rank, iteration, micro-step), so a resumed run
# draws exactly the batches the uninterrupted run would have; evaluation uses its own fixed draws.
def get_batch(split, *key):
    # recreate np.memmap every batch to avoid a memory leak, as per
    # https://stackoverflow.com/questions/45132940/numpy-memmap-memory-usage-want-to-iterate-once/61472122#61472122
    data = np.memmap(os.path.join(data_dir, f'{split}.bin'), dtype=data_dtype, mode='r')
    digest = hashlib.blake2b(repr((seed, split) + key).encode(), digest_size=8).digest()
    g = torch.Generator().manual_seed(int.from_bytes(digest, 'little') >> 1)
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=g)
    return windows(data, ix.numpy())

def windows(data, starts):
    """x: the block_size tokens from each start; y: the same, one token later."""
    xy = torch.from_numpy(data[starts[:, None] + np.arange(block_size + 1)].astype(np.int64))
    x, y = xy[:, :-1].contiguous(), xy[:, 1:].contiguous()
    if device_type == 'cuda':
        # pin arrays x,y, which allows us to move them to GPU asynchronously (non_blocking=True)
        x, y = x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    else:
        x, y = x.to(device), y.to(device)
    return x, y

# init these up here, can override if init_from='resume' (i.e. from a checkpoint)
iter_num = 0
best_val_loss = 1e9

# vocab_size comes from the dataset's meta.pkl (read above) where it has one
if meta_vocab_size is not None:
    report(f'found vocab_size = {meta_vocab_size} (inside {meta_path})')

model_args = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                  bias=bias, vocab_size=None, dropout=dropout) # start with model_args from command line
# architecture options go into the checkpoint only where they differ from GPT-2's, so a default
# checkpoint holds nanoGPT's model_args and nanoGPT's own scripts load it
for k in OPTIONS:
    if globals()[k] != getattr(GPTConfig, k):
        model_args[k] = globals()[k]
if init_from == 'scratch':
    report('Initializing a new model from scratch')
    if meta_vocab_size is None:
        report('defaulting to vocab_size of GPT-2 to 50304 (50257 rounded up for efficiency)')
    model_args['vocab_size'] = meta_vocab_size if meta_vocab_size is not None else 50304
    model = GPT(GPTConfig(**model_args))
elif init_from == 'resume':
    # the model's shape comes from the checkpoint; the rest of the config from this command line
    model_args = {k: v for k, v in model_args.items() if k not in OPTIONS}
    for k in ['n_layer', 'n_head', 'n_embd', 'block_size', 'bias', 'vocab_size', *OPTIONS]:
        if k in checkpoint['model_args']:
            model_args[k] = checkpoint['model_args'][k]
    model = GPT(GPTConfig(**model_args))
    model.load_checkpoint_weights(checkpoint['model'])
    iter_num = checkpoint['iter_num']
    best_val_loss = checkpoint['best_val_loss']
    for note in resume_notes: # an older checkpoint taken for a damaged newest one, or one with no sha256
        report(note)
    report(f'resumed from {resume_path} at iter {iter_num} (best val loss {best_val_loss:.4f})')
    if iter_num >= max_iters:
        report(f'max_iters={max_iters} is already reached: evaluating only (raise --max_iters to train on)')
    elif checkpoint.get('log') and not eval_only: # runs.py joins the two logs into one run
        logger.log(f"continues {checkpoint['log']} at iter {iter_num}")
else:
    report(f'Initializing from OpenAI GPT-2 weights: {init_from}')
    model = GPT.from_pretrained(init_from, dict(dropout=dropout))
    for k in ['n_layer', 'n_head', 'n_embd', 'block_size', 'bias', 'vocab_size']:
        model_args[k] = getattr(model.config, k)
if block_size < model.config.block_size:
    model.crop_block_size(block_size) # so that the checkpoint will have the right value
    model_args['block_size'] = block_size
model.to(device)
report(f'number of parameters: {model.get_num_params() / 1e6:.2f}M')

# a GradScaler does something only for float16, whose gradients can underflow
scaler = torch.amp.GradScaler(device_type, enabled=(dtype == 'float16'))
optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), device_type,
                                       optimizer, muon_lr, muon_momentum)
if init_from == 'resume':
    optimizer.load_state_dict(checkpoint['optimizer'])
    if 'scaler' in checkpoint:
        scaler.load_state_dict(checkpoint['scaler'])
checkpoint = None # free up memory
# the last good checkpoint: what a failure leaves to resume from. Only a good ckpt.pt is worth keeping
# as ckpt_prev.pt when the next save replaces it; not one that resume found damaged.
saved_path, saved_iter = (resume_path, iter_num) if init_from == 'resume' else (None, None)

raw_model = model # what gets saved: never the compiled or DDP wrapper, so keys carry no prefix
if compile:
    report('compiling the model... (takes a ~minute)')
    model = torch.compile(model)
if ddp:
    model = DDP(model, device_ids=[local_rank] if device_type == 'cuda' else None)
    # each rank read out_dir for itself: on nodes that do not share one, they would resume apart
    starts = torch.tensor([iter_num, -iter_num], device=device)
    dist.all_reduce(starts, op=dist.ReduceOp.MAX)
    if starts.tolist() != [iter_num, -iter_num]:
        fail(f'the ranks start from different iterations, {-starts[1].item()} to {starts[0].item()}: '
             f'out_dir must be a folder that every node shares')

# helps estimate an arbitrarily accurate loss over either split using many batches
@torch.no_grad()
def estimate_loss():
    """{'train': loss, 'val': loss}, or None when a stop request cut the evaluation short. Under DDP
    each rank evaluates a share of the batches, so no rank waits in a collective for another's
    evaluation, however long it takes."""
    global stop_signal
    eval_model = model.module if ddp else model # no DDP collectives in an evaluation's forward passes
    eval_model.eval()
    sums = [split_sums(eval_model, split) for split in ['train', 'val']]
    eval_model.train()
    cut = None in sums
    (train_total, train_count, _), (val_total, val_count, val_bytes) = [s or (0.0, 0, 0) for s in sums]
    if ddp: # the sums of every rank's share; cut short on any rank is cut short on all
        totals = torch.tensor([train_total, train_count, val_total, val_count, val_bytes, cut], dtype=torch.float64,
                              device=device)
        dist.all_reduce(totals)
        train_total, train_count, val_total, val_count, val_bytes, cut = totals.tolist()
        if cut: # every rank stops, under the name of the signal that cut it short
            signum = torch.tensor([stop_signal], device=device)
            dist.all_reduce(signum, op=dist.ReduceOp.MAX)
            stop_signal = int(signum.item())
    if cut:
        return None
    # bits per byte: the val loss in bits, over the UTF-8 bytes of the text the targets spell, which
    # compares models whatever their tokenizer (every window has block_size targets)
    val_bpb = val_total * block_size / math.log(2) / val_bytes if val_bytes else None
    return {'train': train_total / train_count, 'val': val_total / val_count, 'val_bpb': val_bpb}

def split_sums(eval_model, split):
    """(the sum of the losses of this rank's windows, how many windows, the bytes their targets
    spell), or None when cut short."""
    if split == 'val' and eval_stride:
        # the same windows every time: no sampling noise between evaluations, or between runs
        data = np.memmap(os.path.join(data_dir, 'val.bin'), dtype=data_dtype, mode='r')
        starts = np.arange(0, len(data) - block_size, eval_stride)
        chunks = np.array_split(starts, math.ceil(len(starts) / batch_size))
        batches = (windows(data, chunk) for chunk in chunks[rank::world_size])
    else:
        batches = (get_batch(split, 'eval', k) for k in range(rank, eval_iters, world_size))
    total, count, nbytes = 0.0, 0, 0
    for X, Y in batches:
        if stop_signal: # 200 batches of a big model outlast the ~30 s before SIGKILL follows SIGTERM
            return None
        with ctx:
            logits, loss = eval_model(X, Y)
        total += loss.item() * len(X) # every window has block_size targets: equal weights
        count += len(X)
        nbytes += token_bytes[Y].sum()
    return total, count, int(nbytes)

# learning rate decay scheduler (cosine, or warmup-stable-decay, with warmup)
def get_lr(it):
    # 1) linear warmup for warmup_iters steps
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    # 2) from lr_decay_iters on, min learning rate. nanoGPT's test is `it > lr_decay_iters`, where
    # the cosine below already gives min_lr; >= also covers lr_decay_iters == warmup_iters (warmup,
    # then min_lr), where the cosine would divide by zero. With lr_decay_iters < warmup_iters the
    # run warms up and then holds min_lr, as nanoGPT's does.
    if it >= lr_decay_iters:
        return min_lr
    # 3a) wsd: hold the top rate, then decay linearly to min_lr over the last warmdown_iters (or
    # all the iterations after warmup, where warmdown_iters is longer: a shortened config still runs)
    if lr_schedule == 'wsd':
        warmdown = min(warmdown_iters, lr_decay_iters - warmup_iters)
        decay_ratio = min(1.0, (lr_decay_iters - it) / warmdown) if warmdown else 1.0
        return min_lr + decay_ratio * (learning_rate - min_lr)
    # 3b) in between, use cosine decay down to min learning rate
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio)) # coeff ranges 0..1
    return min_lr + coeff * (learning_rate - min_lr)

def save_checkpoint():
    """Rank 0 writes ckpt.pt (checkpoint.py: whole or not at all, with its sha256) while the other
    ranks wait for it. A save that fails ends the run on every rank, and the footer names the error."""
    global saved_path, saved_iter
    def save():
        checkpoint = {
            'model': raw_model.state_dict(),
            'optimizer': optimizer.state_dict(),
            'model_args': model_args,
            'iter_num': iter_num,
            'best_val_loss': best_val_loss,
            'config': config,
            'log': os.path.basename(logger.path) if logger.path else None, # the log a resumed run continues
        }
        if scaler.is_enabled():
            checkpoint['scaler'] = scaler.state_dict()
        try:
            write_checkpoint(checkpoint, out_dir, keep_previous=keep_previous_checkpoint and saved_path == ckpt_path)
        except Exception as e: # a full disk, a quota, an I/O error, NaN weights
            return f'{"" if isinstance(e, CheckpointError) else type(e).__name__ + ": "}{e} (saving {ckpt_path})'
        report(f'saving checkpoint to {ckpt_path} at iter {iter_num}')
    error = on_rank_0(save)
    if error:
        report(f'{saved_path} (iter {saved_iter}) is kept to resume from' if saved_path else 'no checkpoint was saved before')
        fail(error)
    saved_path, saved_iter = ckpt_path, iter_num

handoffs = 0 # how many times rank 0 worked alone while the others waited
def on_rank_0(work):
    """work() on rank 0 alone; every rank returns its result, an error text or None. The others wait
    in the store, not in a collective, so a save longer than ddp_timeout does not end the run: rank 0
    beats while it works, and a rank 0 silent for ddp_timeout (stopped, killed, cut off) does."""
    global handoffs
    if not ddp:
        return work()
    handoffs += 1
    done, beat = f'done/{handoffs}', f'beat/{handoffs}'
    if master_process:
        finished = threading.Event()
        def beating():
            while not finished.wait(ddp_timeout / 4):
                store.add(beat, 1)
        beater = threading.Thread(target=beating, daemon=True)
        beater.start()
        try:
            error = work()
        finally:
            finished.set()
            beater.join()
        store.set(done, error or '')
        return error
    beats = -1
    while True:
        try:
            store.wait([done], timedelta(seconds=ddp_timeout / 2))
            return store.get(done).decode() or None
        except dist.DistStoreError: # not done yet: go on waiting while rank 0 beats
            now = store.add(beat, 0)
            if now == beats:
                fail(f'no answer from rank 0 for ddp_timeout={ddp_timeout}s while it saved a checkpoint')
            beats = now

@contextmanager
def lost_ranks_named():
    """A collective that times out, or finds a rank gone, raises from deep inside gloo or NCCL: the
    footer says what happened in words."""
    try:
        yield
    except RuntimeError as e:
        if not ddp or not (isinstance(e, dist.DistError) or 'gloo' in str(e)):
            raise
        fail(f'lost contact with another rank at iter {iter_num} (ddp_timeout={ddp_timeout}s): '
             f'{" ".join(str(e).split())[:300]}')

if wandb_log and master_process:
    wandb.init(project=wandb_project, name=wandb_run_name, config=config)

peak = peak_flops(device, ptdtype)
# training loop
with logger, lost_ranks_named(): # an exception ends the log with status "failed: ..." and goes on up
    X, Y = get_batch('train', rank, iter_num, 0) # fetch the very first batch
    t0 = time.perf_counter() # monotonic: a wall-clock step must not give a dt <= 0
    t_start = t0
    local_iter_num = 0 # number of iterations in the lifetime of this process
    running_flops = -1.0
    stopped = False # by a stop request, rather than at max_iters
    failure = None # a NaN or infinite loss, which ends the run with nothing saved after it
    while True:

        # determine and set the learning rate for this iteration
        lr = get_lr(iter_num) if decay_lr else learning_rate
        for param_group in optimizer.param_groups:
            param_group['lr'] = lr * param_group.get('lr_scale', 1.0) # Muon's group has its own

        # evaluate the loss on train/val sets, log and write checkpoints
        evaluate = (iter_num % eval_interval == 0 and (local_iter_num > 0 or eval_on_start)) or iter_num >= max_iters or eval_only
        losses = estimate_loss() if evaluate else None
        if evaluate and losses is None: # a loss over part of the batches is no step: the run stops instead
            report(f'{signal.Signals(stop_signal).name}: the evaluation at iter {iter_num} was cut short, '
                   f'no step logged')
            stopped = True # at the end of this iteration, on every rank
        if losses is not None:
            bpb = losses.pop('val_bpb')
            if master_process:
                print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
                      + (f', val bpb {bpb:.4f}' if bpb is not None else ''))
                mfu = running_flops / peak * 100 if peak and running_flops > 0 else None
                tflops = running_flops / 1e12 if running_flops > 0 else None
                extra = {} if tflops is None else {'tflops': float(f'{tflops:.4g}')}
                logger.log_step(iter_num, losses['train'], losses['val'], lr=float(f'{lr:.6g}'),
                                mfu=None if mfu is None else round(mfu, 2), **extra,
                                val_bpb=None if bpb is None else round(bpb, 4))
                if wandb_log:
                    wandb.log({'iter': iter_num, 'train/loss': losses['train'], 'val/loss': losses['val'],
                               'val/bpb': bpb, 'lr': lr, 'mfu': mfu})
            if not all(map(math.isfinite, losses.values())): # the weights are broken: never save them
                failure = f'non-finite loss at iter {iter_num} (evaluation)'
                break
            improved = losses['val'] < best_val_loss
            best_val_loss = min(best_val_loss, losses['val'])
            if (improved or always_save_checkpoint) and local_iter_num > 0:
                save_checkpoint()
        if iter_num >= max_iters or eval_only:
            break

        # forward backward update, with optional gradient accumulation to simulate larger batch size
        # and using the GradScaler if data type is float16
        for micro_step in range(gradient_accumulation_steps):
            if ddp:
                # only sync gradients at the last micro step
                model.require_backward_grad_sync = (micro_step == gradient_accumulation_steps - 1)
            with ctx:
                logits, loss = model(X, Y)
                loss = loss / gradient_accumulation_steps # scale the loss to account for gradient accumulation
            loss_sum = loss.detach() if micro_step == 0 else loss_sum + loss.detach() # the iteration's mean loss
            # immediately async prefetch next batch while model is doing the forward pass on the GPU
            last = micro_step == gradient_accumulation_steps - 1
            X, Y = get_batch('train', rank, iter_num + last, 0 if last else micro_step + 1)
            # backward pass, with gradient scaling if training in fp16
            scaler.scale(loss).backward()
        # clip the gradient
        if grad_clip != 0.0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        # Before the step, every rank agrees on how this iteration ends: a NaN or infinite loss on any
        # rank (then no step, and nothing saved after it), a stop request, a save request. This is the
        # one wait for the GPU an iteration has: the loss for the log line comes with it, and under
        # DDP it is one all_reduce, as the stop request alone took before. (float16's GradScaler
        # skipping a step for inf gradients is not this: it looks at the gradients, this at the loss.)
        stop_now, save_now, save_requested = stop_signal, save_requested, False # later signals: next iteration
        if ddp:
            flags = torch.tensor([stop_now, save_now, 0], dtype=torch.float32, device=device)
            flags[2] = torch.isfinite(loss_sum).logical_not()
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            stop_now, save_now, nonfinite_elsewhere = map(int, flags.tolist())
        lossf = loss_sum.item()
        if not math.isfinite(lossf) or (ddp and nonfinite_elsewhere):
            failure = f'non-finite loss at iter {iter_num}'
            break
        # step the optimizer and scaler if training in fp16
        scaler.step(optimizer)
        scaler.update()
        # flush the gradients as soon as we can, no need for this memory anymore
        optimizer.zero_grad(set_to_none=True)

        # timing and logging
        t1 = time.perf_counter()
        dt = t1 - t0
        t0 = t1
        if iter_num % log_interval == 0 and master_process:
            flops, _ = raw_model.estimate_mfu(batch_size * gradient_accumulation_steps, dt, peak) # per device
            if local_iter_num >= 5: # let the training loop settle a bit
                running_flops = flops if running_flops < 0 else 0.9 * running_flops + 0.1 * flops
            shown = running_flops if running_flops > 0 else flops
            speed = f'mfu {shown / peak * 100:.2f}%' if peak else f'{shown / 1e12:.4f} TFLOP/s'
            eta = (t1 - t_start) / (local_iter_num + 1) * (max_iters - iter_num - 1) # evaluations included
            report(f'iter {iter_num}: loss {lossf:.4f}, time {dt*1000:.2f}ms, {speed}, '
                   f'{iter_num}/{max_iters}, eta {format_duration(eta)}')
        iter_num += 1
        local_iter_num += 1

        if stop_now: # every rank stops at the same iteration, whichever got the signal
            stop_signal, stopped = stop_now, True
            break
        if save_now: # SIGUSR1 on any rank
            report(f'SIGUSR1: saving a checkpoint at iter {iter_num}, training goes on')
            save_checkpoint()

    if failure: # the last good checkpoint stays as it is
        report(f'{saved_path} (iter {saved_iter}) is intact: resume from it, with a lower --learning_rate for instance'
               if saved_path else 'no checkpoint was saved before it')
        fail(failure)
    if stopped:
        if local_iter_num > 0: # an evaluation-only run has nothing new to save
            save_checkpoint()
        how = stop_statuses[stop_signal]
        resume = f'; continue with --init_from=resume --out_dir={out_dir}' if find_checkpoints(out_dir) else ''
        report(f'{how} at iter {iter_num}{resume}')
        logger.close(status=how)

if ddp:
    dist.barrier() # every rank leaves together
    dist.destroy_process_group()
if stop_signal:
    sys.exit(128 + stop_signal)
