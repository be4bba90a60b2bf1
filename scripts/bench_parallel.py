"""
Memory and time per rank of DDP against FSDP, side by side in one run: for each world size, torchrun
runs this script's worker with --parallel=ddp and then =fsdp, on a GPT of --n_layer x --n_embd
(about 71M parameters by default) with AdamW (or --optimizer=muon), through distributed.py as
train.py uses it.

$ python scripts/bench_parallel.py                       # CPU processes (gloo): 2 and 4 ranks
$ python scripts/bench_parallel.py --device=cuda --nprocs=1 --n_layer=12 --n_embd=768 --block_size=1024 \
      --batch_size=12 --dtype=bfloat16 --compile=True             # GPT-2 124M on one GPU, as gpu_check.sh does

Each rank reports:
- state: the bytes of the weights, gradients and optimizer state it holds (its shards under FSDP),
  counted from the tensors themselves;
- peak: its peak resident memory (CPU: ru_maxrss; CUDA: max_memory_allocated);
- ms/iter: the median of --iters timed iterations after two warm-up ones, and on CUDA the MFU
  that gives (model.py's estimate, against the GPU's dense peak).
The goal: FSDP's state per rank at most 1/N of DDP's plus one block's worth.
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


def worker(args):
    import torch
    from distributed import Ranks
    from model import GPT, GPTConfig, peak_flops
    ranks = Ranks(args.parallel, 'nccl' if args.device == 'cuda' else 'gloo',
                  f'cuda:{os.environ.get("LOCAL_RANK", 0)}' if args.device == 'cuda' else 'cpu', timeout=600)
    ranks.start()
    torch.manual_seed(0)
    config = GPTConfig(n_layer=args.n_layer, n_head=args.n_embd // 64, n_embd=args.n_embd, block_size=args.block_size,
                       vocab_size=50304, bias=False)
    model = GPT(config)  # FSDP moves each block to the device as it shards it; DDP all of it at once
    params = model.get_num_params()
    block = sum(p.numel() for p in model.transformer.h[0].parameters())
    dtype = getattr(torch, args.dtype)
    # as train.py: FSDP computes in dtype through its policy, DDP under autocast
    ctx = (torch.autocast(ranks.device_type, dtype=dtype) if dtype != torch.float32 and not ranks.sharded
           else contextlib.nullcontext())
    if ranks.sharded:
        ranks.shard(model, dtype)
    else:
        model.to(ranks.device)
    optimizer = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), ranks.device_type, args.optimizer, 0.02, 0.95)
    train = ranks.wrap(model, compile=args.compile)
    x = torch.randint(50304, (args.batch_size, args.block_size), device=ranks.device)
    times = []
    for it in range(args.iters + 2):
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
        if ranks.device_type == 'cuda':
            torch.cuda.synchronize()
        ranks.sum([0.0])  # every rank finishes the iteration before the clock stops
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() if ranks.device_type == 'cuda'
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    everyone = ranks.sum([float(state), float(peak)])
    ranks.max([0.0])
    ms = statistics.median(times[2:]) * 1000
    _, mfu = model.estimate_mfu(args.batch_size, ms / 1000, peak_flops(ranks.device, dtype))
    if ranks.master:
        print(json.dumps({'params': params, 'block_params': block, 'state': everyone[0] / ranks.world_size,
                          'peak': everyone[1] / ranks.world_size, 'ms': ms, 'mfu': mfu}))
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
    print(f'{"ranks":>5} {"parallel":>8} {"state MiB":>10} {"of DDP":>7} {"1/N + a block":>14} {"peak MiB":>9} '
          f'{"ms/iter":>8} {"MFU":>6}')
    for n, parallel, result in rows:
        ddp = next(r for m, p, r in rows if m == n and p == 'ddp')
        bound = ddp['state'] / n + ddp['state'] * block / params
        print(f'{n:>5} {parallel:>8} {result["state"] / 2**20:>10.0f} {result["state"] / ddp["state"]:>7.2f} '
              f'{bound / 2**20:>14.0f} {result["peak"] / 2**20:>9.0f} {result["ms"]:>8.0f} '
              + (f'{result["mfu"] * 100:>5.1f}%' if result['mfu'] else f'{"-":>6}'))


if __name__ == '__main__':
    main()
