"""
What it takes to train on many processes, kept apart from the training loop (as torchtitan keeps its
parallelism apart from its trainer): the process group, wrapping the model in DDP or FSDP2, the
ranks' agreement at every iteration on stopping, saving and a non-finite loss, rank 0's work alone
with a heartbeat, naming a lost rank, and sharded checkpoints. Outside torchrun each is a no-op,
so the loop reads the same for one process or a thousand.

    requests = Requests(master=True)                          # SIGTERM, Ctrl-C, SIGUSR1
    ranks = Ranks('fsdp', 'gloo', 'cpu', timeout=600)         # RANK, WORLD_SIZE from torchrun
    ranks.start()
    model = ranks.build(GPTConfig(...), torch.float32)        # FSDP2: each rank its shards, before the optimizer
    model = ranks.wrap(model, compile=False)                  # compiled; DDP
    stop, save, nonfinite = ranks.agree(requests, loss)       # once an iteration, before the step
    error = ranks.save_sharded(model, optimizer, state, 'out', True, fail)  # FSDP: each rank its shards
"""
import ctypes
import itertools
import json
import math
import os
import platform
import signal
import threading
import time
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist

from checkpoint import FOLDER, CheckpointError, commit_folder, file_sha256, read_sharded, remove
from model import GPT, draw_rows, init_draws

# glibc's mmap threshold under FSDP on a CPU once the model is built (return_freed_memory). Measured by
# scripts/bench_parallel.py (71.5M parameters, 2 ranks): peak resident memory 0.97x DDP's without it,
# 0.69x at 4 MB, 0.64x at 128 kB, for 15% and 19-32% more processor time an iteration (docs/distributed.md)
MMAP_THRESHOLD = 128 << 10


class Requests:
    """What the world asks of a run through signals. SIGTERM (how SLURM and Kubernetes stop jobs) or
    Ctrl-C: stop at the end of this iteration (a second Ctrl-C stops at once). SIGUSR1 (SLURM's
    warning before it preempts a job, sbatch --signal=USR1@90): save at the end of this iteration,
    and train on."""
    statuses = {signal.SIGTERM: 'terminated (SIGTERM)', signal.SIGINT: 'interrupted'}

    def __init__(self, master):
        self.master, self.stop, self.stop_time, self.save = master, 0, 0.0, False
        for signum in self.statuses:
            signal.signal(signum, self.request_stop)
        signal.signal(signal.SIGUSR1, self.request_save)

    def request_stop(self, signum, frame):
        # torchrun forwards the terminal's Ctrl-C to workers that already got it: a repeat within a
        # second is the same keypress, not a second one
        if signum == signal.SIGINT and self.stop and time.time() - self.stop_time > 1.0:
            raise KeyboardInterrupt
        if not self.stop:
            self.stop, self.stop_time = signum, time.time()
            if self.master:
                print(f'{signal.Signals(signum).name}: stopping at the end of this iteration', flush=True)

    def request_save(self, signum, frame):
        self.save = True


class Ranks:
    """This process's place among torchrun's, and what they do together. parallel is 'ddp' (a whole
    replica of the model on every rank) or 'fsdp' (FSDP2: parameters, gradients and optimizer state
    sharded across the ranks); without torchrun there is one process and neither."""

    def __init__(self, parallel, backend, device, timeout):
        self.active = 'RANK' in os.environ
        self.rank = int(os.environ.get('RANK', 0))
        self.local_rank = int(os.environ.get('LOCAL_RANK', 0))
        self.world_size = int(os.environ.get('WORLD_SIZE', 1))
        self.master = self.rank == 0
        self.parallel = parallel if self.active else None
        self.backend, self.device, self.timeout = backend, device, timeout
        self.device_type = device.split(':')[0]
        self.store = None  # where ranks wait for rank 0 when it works alone, outside any collective
        self.handoffs = 0  # how many times rank 0 worked alone
        # torchrun --max-restarts and SLURM --requeue count the times they started this job again
        self.restart = int(os.environ.get('TORCHELASTIC_RESTART_COUNT', 0))
        self.restarts = [f'{what} {n}' for what, n in (('torchrun restart', self.restart),
                         ('SLURM requeue', int(os.environ.get('SLURM_RESTART_COUNT', 0)))) if n]

    @property
    def sharded(self):
        return self.parallel == 'fsdp'

    def start(self):
        """The process group. A collective that waits longer than timeout seconds for a rank raises,
        instead of hanging for ever. torchrun restarts its workers on the store of its first
        attempt, where the dead workers' addresses still are (pytorch/pytorch#167288): each attempt
        gets keys of its own."""
        if not self.active:
            return
        timeout = timedelta(seconds=self.timeout)
        torchrun_store = os.environ.get('TORCHELASTIC_USE_AGENT_STORE') == 'True'  # torchrun hosts the store
        tcp = dist.TCPStore(os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT']), self.world_size,
                            is_master=self.master and not torchrun_store, timeout=timeout)
        self.store = dist.PrefixStore(f'train/attempt_{self.restart}', tcp)
        dist.init_process_group(backend=self.backend, store=self.store, rank=self.rank, world_size=self.world_size,
                                timeout=timeout)
        if self.device_type == 'cuda':
            torch.cuda.set_device(self.device)

    def close(self):
        if self.active:
            dist.barrier()  # every rank leaves together
            dist.destroy_process_group()

    # ------------------------------------------------------------------ the model

    def build(self, config, param_dtype):
        """GPT(config), made from the generator's state as it is, on this rank's device: whole in one
        process and under DDP. Under FSDP no rank ever holds it whole: it is made on the meta device,
        sharded, and then each parameter is drawn a piece at a time as GPT(config) draws it
        (model.init_draws), each rank keeping its own rows. The weights are one process's exactly,
        and the generator ends where GPT(config) leaves it."""
        if not self.sharded:
            return GPT(config).to(self.device)
        draws = init_draws(config)
        with torch.device('meta'):
            model = GPT(config)
        self.shard(model, param_dtype)
        model.to_empty(device=self.device)
        rows, held = {}, {}  # a tied head and embedding are one parameter: one shard, written once
        for name, p in model.named_parameters(remove_duplicate=False):
            if id(p) not in held:  # FSDP2 shards dim 0 as torch.chunk does: rank r from r * ceil(rows / N)
                held[id(p)] = (p.to_local(), min(self.rank * -(-p.shape[0] // self.world_size), p.shape[0]))
            rows[name] = held[id(p)]
        with torch.no_grad():
            draw_rows(draws, rows)
        if model.config.rope:  # buffers, not parameters: made again on the device
            model._set_rotary(model.config.block_size, self.device)
        return model

    def shard(self, model, param_dtype):
        """FSDP2, in place: each block sharded, then the root (the embeddings, the final norm and the
        head, tied to the embedding, in one group), computing in param_dtype with gradients reduced
        in float32. Before the optimizer is made: it then holds each rank's shards."""
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        mesh = init_device_mesh(self.device_type, (self.world_size,))
        policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
        for block in model.transformer.h:
            fully_shard(block, mesh=mesh, mp_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=policy)

    def wrap(self, model, compile):
        """The model to train: compiled (after FSDP's sharding, which supports it), and in DDP,
        which keeps a replica on every rank. Under FSDP on a CPU, from here on freed buffers go
        back to the system (return_freed_memory; not while building, where each shard would take
        a mapping of its own, a page or so more a tensor)."""
        if self.sharded and self.device_type == 'cpu':
            return_freed_memory(MMAP_THRESHOLD)
        if compile:
            model = torch.compile(model)
        if self.parallel == 'ddp':
            from torch.nn.parallel import DistributedDataParallel as DDP
            model = DDP(model, device_ids=[self.local_rank] if self.device_type == 'cuda' else None)
        return model

    def sync_gradients(self, model, sync):
        """Gradients are reduced across the ranks only where sync (gradient accumulation's last micro-step)."""
        if self.parallel == 'ddp':
            model.require_backward_grad_sync = sync
        elif self.sharded:
            model.set_requires_gradient_sync(sync)

    def clip_grad_norm(self, model, max_norm):
        """torch's clip_grad_norm_, with the norm of FSDP's sharded gradients gathered first."""
        params = [p for p in model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if hasattr(norm, 'full_tensor'):  # a DTensor: each rank holds part of the sum
            norm = norm.full_tensor()
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)

    def evaluation_model(self, model):
        """What an evaluation runs: DDP's module, whose forward has no collectives, so that a rank
        evaluates its share of the batches without waiting for the others. FSDP's gathers each
        block's weights in its forward: every rank runs the same number of them (see shares)."""
        return model.module if self.parallel == 'ddp' else model

    def shares(self, n):
        """The indices of n evaluation batches this rank runs: every world_size-th one. Under FSDP
        every rank runs as many forwards, so some run one index twice (their result not counted:
        see counted)."""
        mine = range(self.rank, n, self.world_size) # lazy: eval_iters may be huge
        if not self.sharded:
            return mine
        return itertools.chain(mine, [None] * (-(-n // self.world_size) - len(mine)))

    def stopping(self, stop):
        """Whether an evaluation stops here for a stop request: this rank's alone, but under FSDP
        that of any rank (one all_reduce a batch), since every rank must run the same forwards."""
        return bool(self.max([stop])[0]) if self.sharded else bool(stop)

    # ------------------------------------------------------------------ agreeing

    def sum(self, values):
        """Each value summed over the ranks (float64)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def max(self, values):
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.tolist()

    def agree(self, requests, loss):
        """(stop signal, save, non-finite loss) for this iteration, the same on every rank: a stop
        request, a save request, a NaN or infinite loss on any of them. The one wait for the GPU an
        iteration has: the loss for the log line comes with it, and under torchrun it is one
        all_reduce. Requests that arrive later count for the next iteration."""
        stop, save, requests.save = requests.stop, requests.save, False
        if not self.active:
            return stop, save, not math.isfinite(loss.item())
        flags = torch.tensor([stop, save, 0], dtype=torch.float32, device=self.device)
        flags[2] = torch.isfinite(loss).logical_not()
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        stop, save, nonfinite = map(int, flags.tolist())
        return stop, bool(save), bool(nonfinite)

    def same_start(self, iter_num):
        """The lowest and highest iteration the ranks start from: each read out_dir for itself, and
        on nodes that do not share one they would resume apart."""
        high, low = self.max([iter_num, -iter_num])
        return int(-low), int(high)

    def on_rank_0(self, work, fail):
        """work() on rank 0 alone; every rank returns its result, an error text or None. The others
        wait in the store, not in a collective, so work longer than the timeout does not end the
        run: rank 0 beats while it works, and a rank 0 silent for the timeout (stopped, killed, cut
        off) does, through fail(why)."""
        if not self.active:
            return work()
        self.handoffs += 1
        done, beat = f'done/{self.handoffs}', f'beat/{self.handoffs}'
        if self.master:
            finished = threading.Event()
            def beating():
                while not finished.wait(self.timeout / 4):
                    self.store.add(beat, 1)
            beater = threading.Thread(target=beating, daemon=True)
            beater.start()
            try:
                error = work()
            finally:
                finished.set()
                beater.join()
            self.store.set(done, error or '')
            return error
        beats = -1
        while True:
            try:
                self.store.wait([done], timedelta(seconds=self.timeout / 2))
                return self.store.get(done).decode() or None
            except dist.DistStoreError:  # not done yet: go on waiting while rank 0 beats
                now = self.store.add(beat, 0)
                if now == beats:
                    fail(f'no answer from rank 0 for ddp_timeout={self.timeout}s while it saved a checkpoint')
                beats = now

    @contextmanager
    def lost_ranks_named(self, fail, where):
        """A collective that times out, or finds a rank gone, raises from deep inside gloo or NCCL:
        fail(why) says what happened in words; where() says when."""
        try:
            yield
        except RuntimeError as e:
            if not self.active or not (isinstance(e, dist.DistError) or 'gloo' in str(e)):
                raise
            fail(f'lost contact with another rank at {where()} (ddp_timeout={self.timeout}s): '
                 f'{" ".join(str(e).split())[:300]}')

    # ------------------------------------------------------------------ sharded checkpoints

    def save_sharded(self, model, optimizer, state, out_dir, keep_previous, fail):
        """FSDP's checkpoint, with torch.distributed.checkpoint: each rank writes its own shards into
        out_dir/ckpt.tmp/ and hashes them, and no rank ever holds the whole model or optimizer.
        Then rank 0 adds state (the plain values: iter_num, model_args, config, ...) as state.json
        and puts the folder in place (checkpoint.commit_folder). Returns an error text, the same on
        every rank, or None; a NaN anywhere in the weights is one, before anything is written."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict
        tmp = os.path.join(out_dir, FOLDER + '.tmp')
        error, sums = None, {}
        try:
            model_state, optimizer_state = get_state_dict(model, optimizer)
            if self.max([float(any(nonfinite_shards(model_state.values())))])[0]:
                raise CheckpointError('non-finite values in the model')
            dcp.save({'model': model_state, 'optimizer': optimizer_state}, checkpoint_id=tmp)
            for name in os.listdir(tmp):  # this rank's files; rank 0's .metadata too
                if name.startswith(f'__{self.rank}_') or (self.master and name == '.metadata'):
                    sums[name] = file_sha256(os.path.join(tmp, name))
        except (Exception, dcp.api.CheckpointException) as e:  # a full disk, a quota, an I/O error, NaN weights
            if isinstance(e, dcp.api.CheckpointException):  # (a BaseException) each failed rank's (error, traceback)
                e = next(iter(e.failures.values()))[0]
            error = f'{"" if isinstance(e, CheckpointError) else type(e).__name__ + ": "}{first_line(e)}'
        everyone = [None] * self.world_size
        dist.all_gather_object(everyone, (error, sums))
        errors = [e for e, _ in everyone if e]
        if errors:
            if self.master:
                remove(tmp)
            return f'{errors[0]} (saving {tmp})'

        def commit():
            try:
                with open(os.path.join(tmp, 'state.json'), 'w', encoding='utf-8') as f:
                    json.dump(state, f)
                    f.flush()
                    os.fsync(f.fileno())
                every_sum = {name: digest for _, part in everyone for name, digest in part.items()}
                every_sum['state.json'] = file_sha256(os.path.join(tmp, 'state.json'))
                commit_folder(out_dir, every_sum, keep_previous)
            except OSError as e:
                remove(tmp)
                return f'{type(e).__name__}: {e} (saving {tmp})'
        return self.on_rank_0(commit, fail)

    def load_sharded(self, model, optimizer, folder):
        """A sharded checkpoint into the model and optimizer as this run holds them (sharded by FSDP
        at any world size, or whole), through torch.distributed.checkpoint's resharding."""
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
        model_state, optimizer_state = get_state_dict(model, optimizer)
        target = {'model': model_state, 'optimizer': optimizer_state}
        read_sharded(folder, target)
        set_state_dict(model, optimizer, model_state_dict=target['model'], optim_state_dict=target['optimizer'])

    def load_whole(self, model, optimizer, checkpoint):
        """A checkpoint of one process or DDP (ckpt.pt, its weights and optimizer state whole) into a
        model that FSDP shards: each rank keeps its part. The optimizer's state is keyed by the
        parameters' order in its groups, which names them."""
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                             set_optimizer_state_dict)
        whole = StateDictOptions(full_state_dict=True)
        set_model_state_dict(model, checkpoint['model'], options=whole)
        names = {p: n for n, p in model.named_parameters()}
        order = [names[p] for group in optimizer.param_groups for p in group['params']]
        saved = checkpoint['optimizer']
        by_name = {'state': {order[i]: s for i, s in saved['state'].items()},
                   'param_groups': [{**g, 'params': [order[i] for i in g['params']]} for g in saved['param_groups']]}
        set_optimizer_state_dict(model, optimizer, by_name, options=whole)


def return_freed_memory(threshold):
    """Under FSDP every iteration allocates and frees large buffers (each block's gathered weights,
    the gradients to reduce-scatter). glibc raises its mmap threshold to the size of each large
    block freed, so that they then come from the heap, whose pages it keeps: a rank's resident
    memory grows far past what its tensors hold. A fixed threshold keeps each such buffer in its
    own mapping, given back to the system when freed (at some time per iteration: page faults)."""
    if platform.libc_ver()[0] == 'glibc':
        ctypes.CDLL(None).mallopt(-3, threshold)  # -3: M_MMAP_THRESHOLD


def first_line(error):
    return ' '.join(str(error).split())[:300] or type(error).__name__


def nonfinite_shards(tensors):
    """Whether each of this rank's pieces of the tensors holds a NaN or an infinity."""
    for t in tensors:
        local = t.to_local() if hasattr(t, 'to_local') else t
        if local.is_floating_point() and local.numel():
            yield not bool(torch.isfinite(torch.stack(list(torch.aminmax(local)))).all())
