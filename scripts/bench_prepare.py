"""
data/prepare.py against the loop nanoGPT's prepare scripts use (one process reads all the text,
calls encode_ordinary, writes with tofile), side by side in one run on the same corpus of real text;
then prepare's peak memory on a corpus a quarter the size, and the time to train a BPE on 100 MB.

$ python scripts/bench_prepare.py /usr/src/linux-source-6.1 --mb=300

SOURCE is a folder of text nobody here wrote (Debian's linux-source-6.1, unpacked, is 1.4 GB of C
and reStructuredText). The corpora are the first MB of its text files in sorted order, linked into
--work. Each side runs as its own process; peak memory is the largest sum of the resident memory of
the process and its children, sampled every 100 ms. The rounds alternate the two sides, so that
the machine's noise falls on both.
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def corpus(source, mb, folder):
    """Links to the first mb MB of text files under source, sorted, in folder; their bytes."""
    os.makedirs(folder, exist_ok=True)
    total = 0
    for root, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        for name in sorted(names):
            path = os.path.join(root, name)
            if name.startswith('.') or os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, 'rb') as f:
                if b'\0' in f.read(8192):
                    continue
            link = os.path.join(folder, os.path.relpath(path, source).replace(os.sep, '__'))
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(path), link)
            total += os.path.getsize(path)
            if total >= mb * 1e6:
                return total
    return total


def nanogpt_loop(folder, out):
    """nanoGPT's way: all the text read into one string, encode_ordinary, np.array(...).tofile."""
    import numpy as np
    sys.path.insert(0, ROOT)
    from data.bpe import gpt2_encoding
    enc = gpt2_encoding()
    text = ''.join(open(os.path.join(folder, name), encoding='utf-8', errors='replace').read()
                   for name in sorted(os.listdir(folder)))
    ids = enc.encode_ordinary(text)
    np.array(ids, dtype=np.uint16).tofile(out)
    print(f'tokens {len(ids)}')


def tree_rss(pid):
    """The resident bytes of pid and all its descendants (found through /proc/PID/task/*/children)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f'/proc/{p}/statm') as f:
                total += int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
            for task in os.listdir(f'/proc/{p}/task'):
                with open(f'/proc/{p}/task/{task}/children') as f:
                    todo += map(int, f.read().split())
        except (OSError, ValueError):  # gone meanwhile
            continue
    return total


def run(command, cwd):
    """(seconds, peak resident bytes of the process tree, stdout)"""
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.1)
    seconds = time.perf_counter() - t0
    out = proc.stdout.read()
    if proc.returncode:
        sys.exit(f'{" ".join(command)} failed with exit status {proc.returncode}')
    return seconds, peak, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[1])
    parser.add_argument('source')
    parser.add_argument('--mb', type=float, default=300, help='the corpus both sides prepare')
    parser.add_argument('--small_mb', type=float, default=75, help="prepare's memory at this size too")
    parser.add_argument('--bpe_mb', type=float, default=100, help='the corpus the BPE is trained on')
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--work', default='/tmp/bench_prepare')
    args = parser.parse_args()
    sizes = {}
    # the BPE trains on the documents that go to train: a tenth more text leaves bpe_mb for it
    for mb, want in ((args.mb, args.mb), (args.small_mb, args.small_mb), (args.bpe_mb, args.bpe_mb * 1.12)):
        sizes[mb] = corpus(args.source, want, os.path.join(args.work, f'corpus_{mb:g}'))
        print(f'corpus for {mb:g} MB: {sizes[mb] / 1e6:.1f} MB of text files', flush=True)
    big = os.path.join(args.work, f'corpus_{args.mb:g}')
    prepare = [sys.executable, os.path.join(ROOT, 'data', 'prepare.py')]
    ncores = len(os.sched_getaffinity(0))

    results = {'nanoGPT loop': [], 'data/prepare.py': []}
    for _ in range(args.rounds):
        results['nanoGPT loop'].append(run([sys.executable, __file__, '--nanogpt-loop', big,
                                            os.path.join(args.work, 'loop.bin')], args.work))
        results['data/prepare.py'].append(run([*prepare, big, '--dataset=bench', '--force'], args.work))
        for name, rounds in results.items():
            seconds, peak, _ = rounds[-1]
            print(f'  {name}: {seconds:.1f} s, {sizes[args.mb] / 1e6 / seconds:.2f} MB/s, peak {peak / 2**20:.0f} MiB',
                  flush=True)
    small = run([*prepare, os.path.join(args.work, f'corpus_{args.small_mb:g}'), '--dataset=bench_small', '--force'],
                args.work)
    bpe = run([*prepare, os.path.join(args.work, f'corpus_{args.bpe_mb:g}'), '--dataset=bench_bpe', '--force',
               '--tokenizer=bpe', '--vocab_size=8192', f'--bpe_sample_bytes={int(args.bpe_mb * 1e6)}'], args.work)
    trained = next(line for line in bpe[2].splitlines() if line.startswith('trained a BPE'))

    print(f'\n== prepare, GPT-2 BPE, {ncores} cores, best of {args.rounds} (corpus: {args.source})')
    best = {name: min(rounds) for name, rounds in results.items()}
    for name, (seconds, peak, _) in best.items():
        ratio = best['nanoGPT loop'][0] / seconds
        print(f'{name:16} {sizes[args.mb] / 1e6:6.1f} MB  {seconds:6.1f} s  {sizes[args.mb] / 1e6 / seconds:6.2f} MB/s '
              f'({ratio:.2f}x)  peak {peak / 2**20:6.0f} MiB')
    print(f'{"data/prepare.py":16} {sizes[args.small_mb] / 1e6:6.1f} MB  {small[0]:6.1f} s  '
          f'{sizes[args.small_mb] / 1e6 / small[0]:6.2f} MB/s          peak {small[1] / 2**20:6.0f} MiB')
    print(f'bpe, vocab 8192, on {args.bpe_mb:g} MB: {trained}; the whole prepare of {sizes[args.bpe_mb] / 1e6:.1f} MB '
          f'{bpe[0]:.1f} s, peak {bpe[1] / 2**20:.0f} MiB')


if __name__ == '__main__':
    if sys.argv[1:2] == ['--nanogpt-loop']:
        nanogpt_loop(*sys.argv[2:4])
    else:
        main()
