"""
Memory and time per rank of DDP against FSDP, side by side in one run: for each world size, torchrun
runs this script's worker with --parallel=ddp and then =fsdp, on a GPT of --n_layer x --n_embd
(about 71M parameters by default) with AdamW (or --optimizer=muon), through distributed.py as
train.py uses it.

$ python scripts/bench_parallel.py                       # CPU processes (gloo): 2 and 4 ranks
$ python scripts/bench_parallel.py --device=cuda --nprocs=1 --n_layer=12 --n_embd=768 --block_size=1024 \
      --batch_size=12 --dtype=bfloat16 --compile=True             # GPT-2 124M on one GPU, as gpu_check.sh does

Each rank reports, and the table shows the largest rank's:
- state: the bytes of the weights, gradients and optimizer state it holds (its shards under FSDP),
  counted from the tensors themselves;
- build: how far its memory rose above what the libraries take while it built the model and the
  optimizer, up to the first iteration. CPU: resident memory (Linux's VmHWM, reset before
  building) above what torch, the process group and the modules building loads take (resident
  once a tiny model is built the same way); CUDA: max_memory_allocated;
- peak: its peak resident memory (CPU: ru_maxrss; CUDA: max_memory_allocated);
- ms/iter: the median of --iters timed iterations after two warm-up ones, and on CUDA the MFU
  that gives (model.py's estimate, against the GPU's dense peak); cpu ms and sys ms: the
  processor time (user and system, and system alone) an iteration took, which a machine that
  other work shares changes less than the wall-clock time.
The goals: FSDP's state per rank at most 1/N of DDP's plus one block's worth, its build at most
1/N of the model's bytes, and on a CPU its peak at most 0.65x DDP's at 2 ranks and 0.5x at 4.
"""
import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def resident(field):
    """This process's VmRSS or VmHWM (its peak since the last reset), in bytes; 0 outside Linux."""
    try:
        with open('/proc/self/status') as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ':'))
    except OSError:
        return 0


def worker(args):
    import torch
    from distributed import Ranks
    from model import GPTConfig, peak_flops
    ranks = Ranks(args.parallel, 'nccl' if args.device == 'cuda' else 'gloo',
                  f'cuda:{os.environ.get("LOCAL_RANK", 0)}' if args.device == 'cuda' else 'cpu', timeout=600)
    ranks.start()
    config = GPTConfig(n_layer=args.n_layer, n_head=args.n_embd // 64, n_embd=args.n_embd, block_size=args.block_size,
                       vocab_size=50304, bias=False)
    dtype = getattr(torch, args.dtype)
    # what the libraries take: resident once a tiny model is built the same way, which loads every
    # module building uses (the meta device's kernels alone are some 200 modules, 28 MB)
    ranks.build(GPTConfig(n_layer=1, n_head=1, n_embd=64, block_size=8, vocab_size=64), dtype)
    torch.manual_seed(0)
    cuda = ranks.device_type == 'cuda'
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    libraries = torch.cuda.memory_allocated() if cuda else resident('VmRSS')
    with contextlib.suppress(OSError):
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # VmHWM from here on
    model = ranks.build(config, dtype)  # as train.py builds it
    params = model.get_num_params()
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    block = sum(p.numel() for p in model.transformer.h[0].parameters())
    # as train.py: FSDP computes in dtype through its policy, DDP under autocast
    ctx = (torch.autocast(ranks.device_type, dtype=dtype) if dtype != torch.float32 and not ranks.sharded
           else contextlib.nullcontext())
    optimizer = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), ranks.device_type, args.optimizer, 0.02, 0.95)
    train = ranks.wrap(model, compile=args.compile)
    build = (torch.cuda.max_memory_allocated() if cuda else resident('VmHWM')) - libraries
    x = torch.randint(50304, (args.batch_size, args.block_size), device=ranks.device)
    times = []
    for it in range(args.iters + 2):
        if it == 2:  # the processor time of the timed iterations: a shared machine's waiting left out
            used = resource.getrusage(resource.RUSAGE_SELF)
        ranks.sync_gradients(train, True)
        t0 = time.perf_counter()
        with ctx:
            _, loss = train(x, x)
        loss.backward()
        optimizer.step()
        if it == 0:  # gradients and optimizer state exist now: what this rank holds
            local = lambda t: t.to_local() if hasattr(t, 'to_local') else t
            tensors = [p for p in model.parameters()] + [p.grad for p in model.parameters() if p.grad is not None]
            tensors += [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
            state = sum(local(t).numel() * local(t).element_size() for t in tensors)
        optimizer.zero_grad(set_to_none=False)  # gradients stay allocated, as in a run between steps
        if cuda:
            torch.cuda.synchronize()
        ranks.sum([0.0])  # every rank finishes the iteration before the clock stops
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    now = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime) / args.iters * 1000
    system = (now.ru_stime - used.ru_stime) / args.iters * 1000
    largest = ranks.max([float(state), float(peak), float(build), float(libraries), cpu, system])
    ms = statistics.median(times[2:]) * 1000
    _, mfu = model.estimate_mfu(args.batch_size, ms / 1000, peak_flops(ranks.device, dtype))
    if ranks.master:
        print(json.dumps({'params': params, 'block_params': block, 'model_bytes': model_bytes, 'state': largest[0],
                          'peak': largest[1], 'build': largest[2], 'libraries': largest[3], 'cpu_ms': largest[4],
                          'system_ms': largest[5], 'ms': ms, 'mfu': mfu}))
    ranks.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[1])
    parser.add_argument('--nprocs', default='2,4')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--n_layer', type=int, default=8)
    parser.add_argument('--n_embd', type=int, default=640)
    parser.add_argument('--block_size', type=int, default=256)
    parser.add_argument('--batch_size', type=int, default=2)
    parser.add_argument('--optimizer', default='adamw', choices=['adamw', 'muon'])
    parser.add_argument('--dtype', default='float32', choices=['float32', 'bfloat16'])
    parser.add_argument('--compile', type=lambda v: v == 'True', default=False)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--parallel', help=argparse.SUPPRESS)  # the worker's
    args = parser.parse_args()
    if args.parallel:
        return worker(args)
    rows = []
    for n in map(int, args.nprocs.split(',')):
        for parallel in ('ddp', 'fsdp'):
            command = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={n}',
                       __file__, f'--parallel={parallel}', *sys.argv[1:]]
            r = subprocess.run(command, capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
            if r.returncode:
                sys.exit(f'{parallel} on {n} ranks failed:\n{r.stderr[-3000:]}')
            result = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append((n, parallel, result))
            print(f'{parallel} x{n}: {result}', flush=True)
    params, block = rows[0][2]['params'], rows[0][2]['block_params']
    print(f'\n== {params / 1e6:.1f}M parameters ({block / 1e6:.2f}M a block), {args.optimizer}, {args.device}, '
          f'batch {args.batch_size}x{args.block_size}, {args.dtype}, per rank')
    print(f'{"ranks":>5} {"parallel":>8} {"state MiB":>10} {"of DDP":>7} {"1/N + a block":>14} {"libs MiB":>9} '
          f'{"build MiB":>10} {"model/N":>8} {"peak MiB":>9} {"of DDP":>7} {"ms/iter":>8} {"cpu ms":>7} {"sys ms":>7} '
          f'{"MFU":>6}')
    for n, parallel, result in rows:
        ddp = next(r for m, p, r in rows if m == n and p == 'ddp')
        bound = ddp['state'] / n + ddp['state'] * block / params
        print(f'{n:>5} {parallel:>8} {result["state"] / 2**20:>10.0f} {result["state"] / ddp["state"]:>7.2f} '
              f'{bound / 2**20:>14.0f} {result["libraries"] / 2**20:>9.0f} {result["build"] / 2**20:>10.0f} '
              + (f'{result["model_bytes"] / n / 2**20:>8.0f} ' if parallel == 'fsdp' else f'{"-":>8} ')
              + f'{result["peak"] / 2**20:>9.0f} '
              f'{result["peak"] / ddp["peak"]:>7.2f} {result["ms"]:>8.0f} {result["cpu_ms"]:>7.0f} '
              f'{result["system_ms"]:>7.0f} '
              + (f'{result["mfu"] * 100:>5.1f}%' if result['mfu'] else f'{"-":>6}'))


if __name__ == '__main__':
    main()
