"""
Train a GPT, on a CPU, one GPU, or many through torchrun, and keep a log of the run.

One process (device, dtype and compile default to what the machine can do):
$ python train.py config/train_shakespeare_char_cpu.py --max_iters=500

DDP on 4 GPUs of one node (on CPUs too: the backend is gloo when there is no CUDA):
$ torchrun --standalone --nproc_per_node=4 train.py

FSDP, for a model whose weights and optimizer state outgrow one GPU: each rank holds a 1/N share
$ torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2.py --parallel=fsdp

DDP on 2 nodes of 8 GPUs, from the first (master) node with IP 123.456.123.456:
$ torchrun --nproc_per_node=8 --nnodes=2 --node_rank=0 --master_addr=123.456.123.456 --master_port=1234 train.py
and the same with --node_rank=1 on the second node.

SIGTERM or Ctrl-C stops at the end of the current iteration, cutting an evaluation short, with a
checkpoint to resume from (--init_from=resume); a second Ctrl-C stops at once. SIGUSR1 saves a
checkpoint at the end of the current iteration and trains on. Under torchrun --max-restarts or
SLURM's --requeue, run the same command with --init_from=auto: it resumes when out_dir holds a
checkpoint and starts from scratch otherwise. The distributed plumbing is distributed.py's, and where
a run starts (a new model, a checkpoint resumed, GPT-2's weights) start.py's.
"""

import math
import os
import platform
import shlex
import signal
import sys
import time
from contextlib import nullcontext

import numpy as np
import torch

from checkpoint import FOLDER, NAME, CheckpointError, check_out_dir, find_checkpoints, write_checkpoint
from configurator import check, config_block, configure, die, resolve
from data.dataset import Batches, DatasetError, identity, open_dataset, provenance
from distributed import Ranks, Requests
from logger import LogDirError, TrainingLogger, code_version, format_duration
from model import peak_flops
from start import Start

# -----------------------------------------------------------------------------
# default config values designed to train a gpt2 (124M) on OpenWebText
# I/O
out_dir = 'out' # checkpoints go here, and a resumed run reads them from here
eval_interval = 2000 # evaluate (and save a checkpoint) every this many iterations
log_interval = 1 # print and log the training loss every this many iterations
eval_iters = 200 # batches of each split an evaluation averages the loss over
eval_only = False # if True, script exits right after the first eval
eval_on_start = True # evaluate before the first iteration too (False: a short run spends its time training)
eval_stride = 0 # 0: val loss over eval_iters random batches; N: over every window starting N tokens apart in val.bin, the same windows each time (N = block_size: all of val, each token once)
always_save_checkpoint = True # if True, always save a checkpoint after each eval
keep_previous_checkpoint = True # keep the checkpoint that ckpt.pt replaces as ckpt_prev.pt, to fall back on if ckpt.pt is damaged (twice the disk)
init_from = 'scratch' # 'scratch' or 'resume' or 'auto' (resume if out_dir holds a checkpoint, else scratch) or 'gpt2*'
new_data = False # resume on data other than the checkpoint's on purpose (fine-tuning on new data): without it, such a resume is refused
# logging
log_dir = 'logs' # the run's log file goes here
file_logging = True # write the run's log file (rank 0 only)
wandb_log = False # log to Weights & Biases as well (pip install wandb)
wandb_project = 'owt' # the Weights & Biases project
wandb_run_name = 'gpt2' # the run's name in Weights & Biases
# data
dataset = 'openwebtext' # train on data/<dataset>/train.bin, evaluate on its val.bin
gradient_accumulation_steps = 5 * 8 # used to simulate larger batch sizes
batch_size = 12 # if gradient_accumulation_steps > 1, this is the micro-batch size
block_size = 1024 # context length: tokens in each training window
# model
n_layer = 12 # transformer blocks
n_head = 12 # attention heads in each block
n_embd = 768 # width of the residual stream
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
weight_decay = 1e-1 # AdamW's weight decay, of the matrices and embeddings only
beta1 = 0.9 # AdamW's beta1: how long the mean of the gradients remembers
beta2 = 0.95 # AdamW's beta2: how long the mean of their squares remembers
grad_clip = 1.0 # clip gradients at this value, or disable if == 0.0
# schedule
decay_lr = True # whether to decay the learning rate
lr_schedule = 'cosine' # after warmup: 'cosine' down to min_lr at lr_decay_iters, or 'wsd': constant, then linear down to min_lr over the last warmdown_iters before lr_decay_iters
warmup_iters = 2000 # how many steps to warm up for
lr_decay_iters = 600000 # should be ~= max_iters per Chinchilla
warmdown_iters = 0 # iterations of wsd's linear decay to min_lr (lr_schedule='wsd' only)
min_lr = 6e-5 # minimum learning rate, should be ~= learning_rate/10 per Chinchilla
# parallel
parallel = 'ddp' # under torchrun: 'ddp' (a replica of the model on every rank) or 'fsdp' (FSDP2: weights, gradients and optimizer state sharded across the ranks)
backend = 'auto' # 'nccl' when the processes use CUDA, else 'gloo'
ddp_timeout = 600 # seconds a rank waits for the others in a collective before the run fails, instead of hanging for ever
# system
device = 'auto' # 'cuda', then 'mps', then 'cpu'; or e.g. 'cpu', 'cuda:1'
dtype = 'auto' # bfloat16 where supported, else float16 (with a GradScaler) on CUDA, float32 elsewhere
compile = 'auto' # torch.compile the model: on CUDA only
seed = 1337 # the weights' and the batches' random seed
# -----------------------------------------------------------------------------
config_keys = config_block(__file__) # the names assigned above: nothing imported is a key
config = configure({k: globals()[k] for k in config_keys}, sys.argv[1:], __doc__, config_keys)
globals().update(config)
# -----------------------------------------------------------------------------

# everything the user gave is checked here, before any process group, log file or model exists:
# first each value against its rule (configurator.RULES), then against this machine, the data
# and the checkpoint
check(config)
torchrun = 'RANK' in os.environ
device, device_type, dtype, compile, backend = resolve(device, dtype, compile, backend,
                                                       int(os.environ.get('LOCAL_RANK', 0)) if torchrun else None)
if torchrun and not {'MASTER_ADDR', 'MASTER_PORT'} <= os.environ.keys():
    die('RANK is set, but MASTER_ADDR and MASTER_PORT are not: start the processes with torchrun')
ranks = Ranks(parallel, backend, device, ddp_timeout) # one process outside torchrun, and no parallel
master_process, rank, world_size = ranks.master, ranks.rank, ranks.world_size # rank 0 logs and reports
if ranks.sharded and dtype == 'float16':
    die("dtype='float16' needs a GradScaler, which parallel='fsdp' does not shard: use --dtype=bfloat16 "
        "(or float32), or --parallel=ddp")
if gradient_accumulation_steps % world_size != 0:
    die(f'gradient_accumulation_steps={gradient_accumulation_steps} is not divisible by the world size '
        f'{world_size}; use a multiple of {world_size}')
gradient_accumulation_steps //= world_size
data_dir = os.path.join('data', dataset)
try: # meta.pkl is read as plain data only: a downloaded or shared dataset folder must not run code here
    meta, data_dtype, tokens, token_bytes = open_dataset(data_dir, block_size)
    data_identity = identity(data_dir, meta) # recorded in each checkpoint: a resume must train on the same data
    check_out_dir(out_dir)
except (DatasetError, CheckpointError) as e:
    die(e)
# where the run starts (start.py): init_from made definite, and a checkpoint to resume checked
# against this command line, its shape kept
start = Start(config, data_dir, meta.get('vocab_size'), data_identity, device)
init_from = start.init_from
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
# once the log exists, SIGTERM or Ctrl-C stops at the end of the iteration (cutting an evaluation
# short), and SIGUSR1 saves then; the ranks agree on either at every iteration (distributed.py)
requests = Requests(master_process)
ranks.start()
tokens_per_iter = gradient_accumulation_steps * world_size * batch_size * block_size

def report(message):
    """Console and log alike."""
    if master_process:
        print(message)
    logger.log(message)

def fail(why):
    """End the run for a fault it can name: a line on stderr, the footer `failed: why`, exit status 1."""
    if master_process:
        print(f'train.py: failed: {why}', file=sys.stderr, flush=True)
    logger.close(status=f'failed: {why}')
    sys.exit(1)

logger.log(f'command: {shlex.join(sys.orig_argv)}')
logger.log(f'python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}')
if logger.path and (code := code_version(os.path.dirname(os.path.realpath(__file__)))):
    logger.log(f'code: git {code}')
logger.log(f"data: {data_dir}, source {meta.get('source', 'not recorded')}, "
           f"train {tokens['train']:,} tokens, val {tokens['val']:,} tokens"
           + ''.join(f', {label} {text}' for label, text in provenance(meta)))
report(f'device: {device}, dtype: {dtype}, compile: {compile}, world_size: {world_size}, '
       f'backend: {backend if torchrun else "none"}' + (f', parallel: {ranks.parallel}' if torchrun else ''))
if parallel == 'fsdp' and not torchrun:
    report("parallel='fsdp' without torchrun: one process, which holds the whole model (FSDP shards it across "
           "torchrun's processes); checkpoints are ckpt.pt")
report(f'tokens per iteration will be: {tokens_per_iter:,}')
if ranks.restarts:
    report(f'this run is {" and ".join(ranks.restarts)} of its job')
if config['init_from'] == 'auto':
    report(f'init_from=auto: {start.found[0]} holds a checkpoint, resuming' if start.found else
           f'init_from=auto: no checkpoint in {out_dir}, starting from scratch')

if master_process:
    os.makedirs(out_dir, exist_ok=True)
torch.manual_seed(seed) # every rank makes the same weights: FSDP shards them, and they are one process's
torch.backends.cuda.matmul.allow_tf32 = True # allow tf32 on matmul
torch.backends.cudnn.allow_tf32 = True # allow tf32 on cudnn
token_bytes = torch.from_numpy(token_bytes).to(device) # each token's UTF-8 bytes, for val_bpb
ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}[dtype]
# FSDP computes in ptdtype through its own policy (MixedPrecisionPolicy), with no autocast
ctx = nullcontext() if dtype == 'float32' or ranks.sharded else torch.amp.autocast(device_type=device_type, dtype=ptdtype)

batches = Batches(data_dir, data_dtype, block_size, batch_size, device, seed)
def train_batch(it, micro_step):
    """The micro-step's batch of this rank: rank r takes the global batch's micro-steps from r * steps
    on, so that any world size trains on one process's batches (the 0 stood for the rank: one process
    draws what it always has), and a resumed run on the uninterrupted one's."""
    return batches.random('train', 0, it, rank * gradient_accumulation_steps + micro_step)

# the model (new, resumed or GPT-2's), on the device or sharded, with its optimizer and scaler
model, optimizer, scaler = start.build(ranks, dtype, report, logger.log, fail)
iter_num, best_val_loss, model_args = start.iter_num, start.best_val_loss, start.model_args
if rank:
    torch.manual_seed(seed + rank) # each rank its own dropout; rank 0's is one process's
# the last good checkpoint: what a failure leaves to resume from. Only a good newest checkpoint is
# worth keeping as the previous when the next save replaces it; not one that resume found damaged.
saved_path, saved_iter = (start.resume_path, iter_num) if init_from == 'resume' else (None, None)
newest = [os.path.join(out_dir, name) for name in (NAME, FOLDER)]
save_path = newest[ranks.sharded]

raw_model = model # what gets saved: never the compiled or DDP wrapper, so keys carry no prefix
if compile:
    report('compiling the model... (takes a ~minute)')
model = ranks.wrap(model, compile)
low, high = ranks.same_start(iter_num)
if low != high: # each rank read out_dir for itself: on nodes that do not share one, they would resume apart
    fail(f'the ranks start from different iterations, {low} to {high}: out_dir must be a folder that every node shares')

# helps estimate an arbitrarily accurate loss over either split using many batches
@torch.no_grad()
def estimate_loss():
    """{'train': loss, 'val': loss, 'val_bpb': bits per byte}, or None when a stop request cut the
    evaluation short. Each rank evaluates a share of the batches (distributed.py says how)."""
    eval_model = ranks.evaluation_model(model)
    eval_model.eval()
    sums = [split_sums(eval_model, split) for split in ['train', 'val']]
    eval_model.train()
    cut = None in sums
    (train_total, train_count, _), (val_total, val_count, val_bytes) = [s or (0.0, 0, 0) for s in sums]
    # the sums of every rank's share; cut short on any rank is cut short on all, under its signal
    train_total, train_count, val_total, val_count, val_bytes, cut = ranks.sum(
        [train_total, train_count, val_total, val_count, val_bytes, cut])
    if cut:
        requests.stop = int(ranks.max([requests.stop])[0])
        return None
    # bits per byte: the val loss in bits, over the UTF-8 bytes of the text the targets spell, which
    # compares models whatever their tokenizer (every window has block_size targets)
    val_bpb = val_total * block_size / math.log(2) / val_bytes if val_bytes else None
    return {'train': train_total / train_count, 'val': val_total / val_count, 'val_bpb': val_bpb}

def split_sums(eval_model, split):
    """(the sum of the losses of this rank's windows, how many windows, the bytes their targets
    spell), or None when cut short."""
    if split == 'val' and eval_stride: # the same windows every time: no noise between evaluations, or runs
        strided = batches.strided(split, eval_stride)
        n, batch = len(strided), lambda k: strided[k]()
    else:
        n, batch = eval_iters, lambda k: batches.random(split, 'eval', k)
    total, count, nbytes = 0.0, 0, 0
    for k in ranks.shares(n): # None: a forward FSDP needs from every rank, not counted
        if ranks.stopping(requests.stop): # 200 batches of a big model outlast the ~30 s before SIGKILL
            return None
        X, Y = batch(n - 1 if k is None else k)
        with ctx:
            logits, loss = eval_model(X, Y)
        if k is not None:
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
    """A checkpoint of now: under FSDP every rank writes its shards into out_dir/ckpt/, else rank 0
    writes ckpt.pt while the others wait (checkpoint.py: whole or not at all, with its sha256). A
    save that fails ends the run on every rank, and the footer names the error."""
    global saved_path, saved_iter
    state = {'model_args': model_args, 'iter_num': iter_num, 'best_val_loss': best_val_loss, 'config': config,
             'log': os.path.basename(logger.path) if logger.path else None, # the log a resumed run continues
             'data': data_identity}
    keep = keep_previous_checkpoint and saved_path in newest
    if ranks.sharded:
        error = ranks.save_sharded(raw_model, optimizer, state, out_dir, keep, fail)
    else:
        def save():
            checkpoint = {'model': raw_model.state_dict(), 'optimizer': optimizer.state_dict(), **state}
            if scaler.is_enabled():
                checkpoint['scaler'] = scaler.state_dict()
            try:
                write_checkpoint(checkpoint, out_dir, keep_previous=keep)
            except Exception as e: # a full disk, a quota, an I/O error, NaN weights
                return f'{"" if isinstance(e, CheckpointError) else type(e).__name__ + ": "}{e} (saving {save_path})'
        error = ranks.on_rank_0(save, fail)
    if error:
        report(f'{saved_path} (iter {saved_iter}) is kept to resume from' if saved_path else 'no checkpoint was saved before')
        fail(error)
    report(f'saving checkpoint to {save_path} at iter {iter_num}')
    saved_path, saved_iter = save_path, iter_num

if wandb_log and master_process:
    wandb.init(project=wandb_project, name=wandb_run_name, config=config)

peak = peak_flops(device, ptdtype)
# training loop; an exception ends the log with status "failed: ..." and goes on up, and a rank lost
# in a collective is named in the footer
with logger, ranks.lost_ranks_named(fail, lambda: f'iter {iter_num}'):
    X, Y = train_batch(iter_num, 0) # fetch the very first batch
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
            report(f'{signal.Signals(requests.stop).name}: the evaluation at iter {iter_num} was cut short, '
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
            last = micro_step == gradient_accumulation_steps - 1
            ranks.sync_gradients(model, last) # only sync gradients at the last micro step
            with ctx:
                logits, loss = model(X, Y)
                loss = loss / gradient_accumulation_steps # scale the loss to account for gradient accumulation
            loss_sum = loss.detach() if micro_step == 0 else loss_sum + loss.detach() # the iteration's mean loss
            # immediately async prefetch next batch while model is doing the forward pass on the GPU
            X, Y = train_batch(iter_num + last, 0 if last else micro_step + 1)
            # backward pass, with gradient scaling if training in fp16
            scaler.scale(loss).backward()
        # clip the gradient
        if grad_clip != 0.0:
            scaler.unscale_(optimizer)
            ranks.clip_grad_norm(model, grad_clip)
        # Before the step, every rank agrees on how this iteration ends: a NaN or infinite loss on any
        # rank (then no step, and nothing saved after it), a stop request, a save request. (float16's
        # GradScaler skipping a step for inf gradients is not this: it looks at the gradients, this
        # at the loss.)
        stop_now, save_now, nonfinite = ranks.agree(requests, loss_sum)
        if nonfinite:
            failure = f'non-finite loss at iter {iter_num}'
            break
        lossf = loss_sum.item()
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
            requests.stop, stopped = stop_now, True
            break
        if save_now: # SIGUSR1 on any rank
            report(f'SIGUSR1: saving a checkpoint at iter {iter_num}, training goes on')
            save_checkpoint()

    if failure: # the last good checkpoint stays as it is
        report(f'{saved_path} (iter {saved_iter}) is intact: resume from it, with a lower --learning_rate for instance'
               if saved_path else 'no checkpoint was saved before it')
        fail(failure)
    if not stopped and local_iter_num > 0 and saved_iter != iter_num: # always_save_checkpoint=False, no better val loss
        unsaved = f'no checkpoint saved since iter {saved_iter}' if saved_path else 'no checkpoint saved'
        report(f'{unsaved}: no later val loss beat the best, {best_val_loss:.4f} (always_save_checkpoint=False)')
        logger.close(status=f'completed ({unsaved})')
    if stopped:
        if local_iter_num > 0: # an evaluation-only run has nothing new to save
            save_checkpoint()
        how = Requests.statuses[requests.stop]
        resume = f'; continue with --init_from=resume --out_dir={out_dir}' if find_checkpoints(out_dir) else ''
        report(f'{how} at iter {iter_num}{resume}')
        logger.close(status=how)

ranks.close()
if requests.stop:
    sys.exit(128 + requests.stop)
