"""
Prepare your own text for training: files, folders and globs of plain text, JSONL and Parquet (each
also as .gz or .zst), tokenized by characters, by GPT-2's BPE, or by a BPE trained on the corpus.

$ python data/prepare.py books/ --dataset=books --tokenizer=char
$ python data/prepare.py 'crawl/*.jsonl.zst' --dataset=crawl --tokenizer=bpe --vocab_size=16384
$ python train.py --dataset=books ...

It writes data/NAME/ (beside train.py's data/, from where you run it): train.bin and val.bin, the
token ids as uint16 where the vocabulary fits and uint32 where it does not; meta.pkl, how to read
them and where they came from; and tokenizer.tiktoken for --tokenizer=bpe.

- Documents: a text file is one, a JSONL line is one (its --text_key field), a Parquet row is one
  (its --text_key column). A separator token goes between the documents of a split.
- The split is by document: a document goes to val when a hash of its text (its first 8 MiB, for a
  longer one) falls in the --val_fraction, so the same corpus splits the same way on any machine,
  and adding files never moves a document. A corpus of one document splits by position instead,
  its end going to val, as nanoGPT's shakespeare_char does.
- Encoding runs on every core (--num_proc), and the output is byte-identical however many. Memory
  stays flat: documents are read, encoded and written a batch at a time.
- The dataset is built in a hidden folder beside it and renamed into place when complete: Ctrl-C,
  SIGTERM or an error leave nothing behind, and an existing data/NAME is replaced (whole, at the
  end) only with --force.
"""
import argparse
import collections
import concurrent.futures
import glob
import hashlib
import multiprocessing
import os
import pickle
import re
import shutil
import signal
import sys
import time

import numpy as np

# run as a script, Python puts only data/ on sys.path: the repo root makes data.* importable
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data.corpus import CorpusError, Stats, find_files, read_documents, split_name  # noqa: E402
from data.dataset import provenance  # noqa: E402
from data.tokenizer import CharTokenizer, code_points, load_tokenizer, token_dtype, train_bpe  # noqa: E402

BATCH = 1 << 20  # bytes of text (or of small files) sent to a worker at a time
SMALL = 1 << 20  # a file this size or smaller (an eighth of it, compressed) is read by a worker, whole
WRITTEN = {'train.bin', 'val.bin', 'meta.pkl', 'tokenizer.tiktoken'}  # all that --force may replace


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, as every script of this project refuses input
        fail(message)


def fail(message):
    print(f'prepare.py: error: {message}', file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    parser = Parser(description=__doc__.split('\n\n')[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('paths', nargs='+', metavar='PATH', help='a file, a folder (searched recursively) or a glob')
    parser.add_argument('--dataset', required=True, help='the folder to write under data/: a plain name')
    parser.add_argument('--tokenizer', choices=['char', 'gpt2', 'bpe'], default='gpt2',
                        help="char: the corpus's characters; gpt2: GPT-2's BPE; bpe: trained on the corpus")
    parser.add_argument('--vocab_size', type=int, help='bpe only: the ids, separator included (default 8192)')
    parser.add_argument('--bpe_sample_bytes', type=int, default=1 << 30,
                        help='bpe only: train it on at most this much text, from the first train documents')
    parser.add_argument('--text_key', default='text', help='the JSONL field or Parquet column holding the text')
    parser.add_argument('--val_fraction', type=float, default=0.1, help='the share of documents for val')
    parser.add_argument('--block_size', type=int, default=1024,
                        help='the context you will train with: each split must hold more tokens than this')
    parser.add_argument('--num_proc', type=int, default=len(os.sched_getaffinity(0)), help='encoding processes')
    parser.add_argument('--force', action='store_true', help='replace an existing data/NAME')
    args = parser.parse_args(argv)
    if not re.fullmatch(r'[A-Za-z0-9_][A-Za-z0-9_.-]*', args.dataset):
        fail(f'--dataset must be a plain folder name (letters, digits, _ . -), got {args.dataset!r}')
    if args.vocab_size is not None and args.tokenizer != 'bpe':
        fail(f'--vocab_size is for --tokenizer=bpe; {args.tokenizer} has a vocabulary of its own')
    args.vocab_size = 8192 if args.vocab_size is None else args.vocab_size
    if args.tokenizer == 'bpe' and not 257 <= args.vocab_size < 1 << 32:
        fail(f'--vocab_size must be at least 257 (256 bytes and the separator) and below 2**32, '
             f'got {args.vocab_size}')
    if not 0 < args.val_fraction < 1:
        fail(f'--val_fraction must be between 0 and 1, got {args.val_fraction}')
    for key in ('block_size', 'num_proc', 'bpe_sample_bytes'):
        if getattr(args, key) < 1:
            fail(f'--{key} must be at least 1, got {getattr(args, key)}')
    return args


class Stopped(Exception):
    """SIGTERM, raised where the program is, as Ctrl-C raises KeyboardInterrupt."""


MAIN_PID = os.getpid()


def on_sigterm(signum, frame):
    # a worker inherits this handler when it forks, and the pool may stop it (after another worker's
    # error) before start_worker resets it: it ends quietly, as SIGTERM's default would, with no traceback
    if os.getpid() != MAIN_PID:
        os._exit(128 + signum)
    raise Stopped


# ---------------------------------------------------------------------- the stages

class Corpus:
    """The corpus's files and documents. Two ways to go through them:
    - units(): work for the processes, in file order: ('files', [(path, named, size)]) for runs of small
      files, which a worker reads itself, and ('pieces', [piece]) for the documents of large files,
      read here; about BATCH bytes each
    - pieces(): every piece read here, for counting documents and for the BPE's sample
    A piece is (text, first, last, split_digest, doc_digest): whether it starts and ends its
    document; the sha256 that picks its document's split (of the first piece's text: of the whole
    document but for a long one) where first; its document's sha256 where last."""

    def __init__(self, paths, args, scratch):
        self.args, self.scratch = args, scratch
        self.named = {path for path in paths if os.path.isfile(path)}  # named on their own: refused, never skipped
        self.found = Stats()  # what finding the files skipped
        self.files = find_files(paths, self.found)
        self.size = sum(size for _, size in self.files)

    def pieces(self, stats):
        for path, _ in self.files:
            yield from hashed(read_documents(path, self.args.text_key, stats, self.scratch, path in self.named))

    def units(self, stats):
        files, pieces, size = [], [], 0
        for path, bytes_on_disk in self.files:
            small = bytes_on_disk <= (SMALL // 8 if split_name(path)[1] else SMALL)  # compressed: room to grow
            if small and pieces or not small and files:  # keep the files' order: one kind at a time
                yield ('pieces', pieces) if pieces else ('files', files)
                files, pieces, size = [], [], 0
            if small:
                files.append((path, path in self.named, bytes_on_disk))
                size += bytes_on_disk
            else:
                for piece in hashed(read_documents(path, self.args.text_key, stats, self.scratch, path in self.named)):
                    pieces.append(piece)
                    size += len(piece[0])
                    if size >= BATCH:
                        yield 'pieces', pieces
                        pieces, size = [], 0
            if size >= BATCH:
                yield ('pieces', pieces) if pieces else ('files', files)
                files, pieces, size = [], [], 0
        if files or pieces:
            yield ('pieces', pieces) if pieces else ('files', files)

    def count_documents(self, limit):
        """How many documents there are, reading no further than the start of document limit."""
        n, stats = 0, Stats()
        for path, _ in self.files:
            for _, _, last in read_documents(path, self.args.text_key, stats, self.scratch, path in self.named):
                if n + 1 >= limit:
                    return limit
                n += last
        return n


def hashed(documents):
    """Pieces (see Corpus) of read_documents' (text, where, last)."""
    doc = None
    for text, _, last in documents:
        data = text.encode('utf-8', 'surrogatepass')
        first = doc is None
        if first:
            doc = hashlib.sha256(data)
            split_digest = doc.digest()
        else:
            doc.update(data)
        yield text, first, last, split_digest if first else None, doc.digest() if last else None
        if last:
            doc = None


def in_order(pool, work, items, depth):
    """work(item) for each item on the pool's processes, results in the items' order, with at most
    depth items in flight so that memory stays flat."""
    pending = collections.deque()
    for item in items:
        pending.append((item, pool.submit(work, item)))
        if len(pending) >= depth:
            item, future = pending.popleft()
            yield item, future.result()
    while pending:
        item, future = pending.popleft()
        yield item, future.result()


class Workers(concurrent.futures.ProcessPoolExecutor):
    """Processes that each build the tokenizer once (from the dataset folder and its meta), then
    read and encode what they are sent. A worker killed (the OOM killer) ends the run instead of
    hanging it, and leaving the block, however, stops them all at once."""

    def __init__(self, n, folder, meta, args):
        super().__init__(n, multiprocessing.get_context(), initializer=start_worker, initargs=(folder, meta, args))

    def __exit__(self, *exc):
        for process in list(self._processes.values()):
            process.terminate()
        # a worker stopped while it sent a result leaves half a message in the result pipe, on which
        # the pool's thread would wait for ever (Ctrl-C mid-send hung prepare): with this process's
        # end of the pipe closed too, the dead workers' ends are the last, and the thread reads the end
        self._result_queue._writer.close()
        self.shutdown(cancel_futures=True)
        return False


worker = None  # a worker process's (tokenizer, args)


def start_worker(folder, meta, args):
    global worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the main process stops them
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # and stops them with SIGTERM
    worker = (load_tokenizer(folder, meta) if meta else None), args


def unit_pieces(unit, stats):
    """The pieces of a unit of work; a worker reads and hashes the small files itself."""
    kind, items = unit
    if kind == 'pieces':
        return items
    args = worker[1]
    return [piece for path, named, _ in items
            for piece in hashed(read_documents(path, args.text_key, stats, explicit=named))]


def encode(unit):
    """(token ids of the unit's pieces end to end, their lengths, the pieces less their text, what
    reading skipped): what the main process writes."""
    tokenizer, stats = worker[0], Stats()
    pieces = unit_pieces(unit, stats)
    ids = [tokenizer.encode(piece[0]) for piece in pieces]
    dtype = token_dtype(tokenizer.vocab_size)
    return (np.concatenate(ids).astype(dtype) if ids else np.zeros(0, dtype), [len(i) for i in ids],
            [piece[1:] for piece in pieces], stats)


def characters(unit):
    """(the unit's characters, as numbers; its documents; what reading skipped)."""
    stats = Stats()
    pieces = unit_pieces(unit, stats)
    codes = np.unique(np.concatenate([code_points(p[0]) for p in pieces])) if pieces else np.zeros(0, np.uint32)
    return codes, sum(p[2] for p in pieces), stats


def units_done(unit):
    """The bytes on disk a unit covers, of files a worker read (those read here count as they are read)."""
    return sum(size for _, _, size in unit[1]) if unit[0] == 'files' else 0


class Progress:
    """A tqdm bar (MB/s, ETA) on a terminal; a plain line every 10 s on stderr otherwise."""

    def __init__(self, what, total):
        self.what, self.total, self.start, self.shown = what, total, time.time(), time.time()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=what, unit='B', unit_scale=True, file=sys.stderr, dynamic_ncols=True)

    def update(self, done):
        if self.bar is not None:
            self.bar.update(min(done, self.total) - self.bar.n)
        elif time.time() - self.shown >= 10:
            self.shown, elapsed = time.time(), time.time() - self.start
            rate = done / elapsed if elapsed else 0
            eta = (self.total - done) / rate if rate else 0
            print(f'{self.what}: {done / 1e6:,.1f} of {self.total / 1e6:,.1f} MB ({done / max(self.total, 1):.0%}), '
                  f'{rate / 1e6:.1f} MB/s, eta {time.strftime("%H:%M:%S", time.gmtime(eta))}', file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def char_tokenizer(corpus, args, folder):
    """The corpus's characters, found on every core; a separator too where it has several documents."""
    found, documents, stats, done = set(), 0, Stats(), 0
    progress = Progress('characters', corpus.size)
    with Workers(args.num_proc, folder, None, args) as pool:
        for unit, (codes, n, unit_stats) in in_order(pool, characters, corpus.units(stats), 2 * args.num_proc + 2):
            found.update(codes.tolist())
            documents += n
            done += units_done(unit)
            progress.update(done + stats.bytes_read)
    progress.close()
    return CharTokenizer([chr(c) for c in sorted(found)], separator=documents > 1)


def bpe_tokenizer(corpus, args, one_document):
    """A BPE trained on the first bpe_sample_bytes of text of the documents that go to train (for a
    corpus of one document, the first of its bytes short of its val end)."""
    limit = args.bpe_sample_bytes
    if one_document:
        limit = min(limit, int(corpus.size * (1 - args.val_fraction)))
    progress = Progress('bpe sample', limit)
    def sample():
        taken, split = 0, None
        for text, first, _, split_digest, _ in corpus.pieces(Stats()):
            if first:
                split = goes_to(split_digest, args.val_fraction)
            if split == 'val' and not one_document:
                continue
            data = text.encode('utf-8', 'surrogatepass')[:limit - taken]
            taken += len(data)
            progress.update(taken)
            yield data.decode('utf-8', 'replace')
            if taken >= limit:
                return
    tokenizer = train_bpe(sample(), args.vocab_size)
    progress.close()
    return tokenizer


def goes_to(split_digest, val_fraction):
    """The split of a document: val where the first 8 bytes of its sha256 fall in val_fraction."""
    return 'val' if int.from_bytes(split_digest[:8], 'big') < val_fraction * 2 ** 64 else 'train'


class Splits:
    """train.bin and val.bin as they are written: each document's tokens in its split's file, the
    separator before every document but the split's first."""

    def __init__(self, folder, separator, dtype):
        self.folder, self.separator, self.dtype = folder, separator, dtype
        self.files = {split: open(os.path.join(folder, f'{split}.bin'), 'wb') for split in ('train', 'val')}
        self.documents = {'train': 0, 'val': 0}
        self.tokens = {'train': 0, 'val': 0}
        self.by_position = False
        self.sha256 = hashlib.sha256()  # over every document's, in order

    def write(self, result, val_fraction):
        """A unit's tokens, each document's to its split; the corpus's sha256 and documents go on."""
        ids, lengths, pieces, _ = result
        out = {'train': [], 'val': []}
        end = 0
        for n, (first, last, split_digest, doc_digest) in zip(lengths, pieces):
            if first:
                self.split = goes_to(split_digest, val_fraction)
                if self.documents[self.split] and self.separator is not None:
                    out[self.split].append(np.array([self.separator], dtype=self.dtype))
                self.documents[self.split] += 1
            out[self.split].append(ids[end:end + n])
            end += n
            if last:
                self.sha256.update(doc_digest)
        for split, arrays in out.items():
            if arrays:
                tokens = np.concatenate(arrays)
                tokens.tofile(self.files[split])
                self.tokens[split] += len(tokens)

    def close(self, val_fraction):
        for f in self.files.values():
            f.flush()
            os.fsync(f.fileno())
            f.close()
        if sum(self.documents.values()) == 1:
            self.split_by_position(val_fraction)

    def split_by_position(self, val_fraction):
        """One document: its first (1 - val_fraction) to train, the rest to val, as nanoGPT splits
        shakespeare_char (for characters, the very same files). Copied a chunk at a time."""
        train, val = (os.path.join(self.folder, f'{split}.bin') for split in ('train', 'val'))
        if self.documents['val']:
            os.replace(val, train)
        n = self.tokens['train'] + self.tokens['val']
        keep = int(n * (1 - val_fraction))
        tokens = np.memmap(train, dtype=self.dtype, mode='r')
        with open(val, 'wb') as f:
            for start in range(keep, n, 1 << 24):
                tokens[start:start + (1 << 24)].tofile(f)
            os.fsync(f.fileno())
        del tokens
        os.truncate(train, keep * np.dtype(self.dtype).itemsize)
        self.tokens = {'train': keep, 'val': n - keep}
        self.by_position = True


# ---------------------------------------------------------------------- the whole

def prepare(args, tmp):
    """Build the dataset in tmp; its meta."""
    os.makedirs(tmp)
    corpus = Corpus(args.paths, args, scratch=tmp)
    if not corpus.count_documents(limit=1):
        raise CorpusError(f'no text in {", ".join(args.paths)}: every file is empty or was skipped')
    if args.tokenizer == 'char':
        tokenizer = char_tokenizer(corpus, args, tmp)
    elif args.tokenizer == 'bpe':
        t0 = time.time()
        tokenizer = bpe_tokenizer(corpus, args, one_document=corpus.count_documents(limit=2) == 1)
        tokenizer.save(tmp)
        print(f'trained a BPE of {tokenizer.vocab_size:,} tokens in {time.time() - t0:.1f} s', flush=True)
    else:  # built here too, so that missing tokenizer files are one line, not a worker's traceback
        try:
            tokenizer = load_tokenizer(tmp, {'tokenizer': 'gpt2'})
        except RuntimeError as e:
            raise CorpusError(e) from None
    meta = {'vocab_size': tokenizer.vocab_size, 'dtype': token_dtype(tokenizer.vocab_size),
            'tokenizer': tokenizer.name, **tokenizer.meta()}

    splits, stats, done = Splits(tmp, meta['separator'], meta['dtype']), Stats(), 0
    stats.skipped.update(corpus.found.skipped)
    progress = Progress('encoding', corpus.size)
    with Workers(args.num_proc, tmp, meta, args) as pool:
        for unit, result in in_order(pool, encode, corpus.units(stats), 2 * args.num_proc + 2):
            splits.write(result, args.val_fraction)
            stats.merge(result[3])
            done += units_done(unit)
            progress.update(done + stats.bytes_read)
    progress.close()
    splits.close(args.val_fraction)
    for split in ('val', 'train'):
        if splits.tokens[split] <= args.block_size:
            where = ('its share of the one document' if splits.by_position
                     else f'{splits.documents[split]:,} of {sum(splits.documents.values()):,} documents')
            raise CorpusError(f'{split} would hold {splits.tokens[split]:,} tokens ({where}), too few for a block of '
                              f'{args.block_size}: '
                              + ('raise --val_fraction, add text, or pass' if split == 'val' else 'add text, or pass')
                              + ' the smaller --block_size you will train with')

    skipped = dict(stats.skipped)
    if stats.replaced:
        skipped['files with invalid UTF-8 (decoded with replacement)'] = len(stats.replaced)
    read = [(path, size) for path, size in corpus.files if path not in stats.binary]
    meta.update({'source': ' '.join(args.paths), 'files': len(read), 'bytes': sum(size for _, size in read),
                 'sha256': splits.sha256.hexdigest(), 'documents': splits.documents, 'tokens': splits.tokens,
                 'split': 'position' if splits.by_position else 'hash',
                 'skipped': skipped, 'val_fraction': args.val_fraction})
    with open(os.path.join(tmp, 'meta.pkl'), 'wb') as f:
        pickle.dump(meta, f)
        f.flush()
        os.fsync(f.fileno())
    return meta


def put_in_place(tmp, out):
    """The finished dataset takes out's place; a dataset already there (--force) goes only after."""
    old = None
    if os.path.exists(out):
        old = f'{tmp}.old'
        os.replace(out, old)
    os.replace(tmp, out)
    if old:
        shutil.rmtree(old)


def main(argv):
    args = parse_args(argv)
    out = os.path.join('data', args.dataset)
    if os.path.exists(out):
        if not args.force:
            fail(f'{out} already exists: pick another --dataset, or replace it with --force')
        foreign = sorted(set(os.listdir(out)) - WRITTEN) if os.path.isdir(out) else [out]
        if foreign:
            fail(f'{out} holds files prepare.py did not write ({", ".join(foreign[:5])}): '
                 f'--force replaces only a dataset it wrote; pick another --dataset')
    for stale in glob.glob(os.path.join('data', f'.{args.dataset}.tmp-*')):  # a prepare killed with SIGKILL
        pid = stale.rsplit('-', 1)[1].split('.')[0]
        if pid.isdigit() and not os.path.exists(f'/proc/{pid}'):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = os.path.join('data', f'.{args.dataset}.tmp-{os.getpid()}')
    signal.signal(signal.SIGTERM, on_sigterm)
    t0 = time.time()
    try:
        meta = prepare(args, tmp)
        put_in_place(tmp, out)
    except CorpusError as e:
        fail(e)
    except concurrent.futures.process.BrokenProcessPool:
        print('prepare.py: failed: an encoding process died (killed, or out of memory): nothing was written',
              file=sys.stderr)
        sys.exit(1)
    except (KeyboardInterrupt, Stopped) as e:
        how = 'SIGTERM' if isinstance(e, Stopped) else 'Ctrl-C'
        print(f'prepare.py: stopped by {how}: nothing was written', file=sys.stderr)
        sys.exit(143 if how == 'SIGTERM' else 130)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.time() - t0
    print(f'wrote {out}: train {meta["tokens"]["train"]:,} tokens, val {meta["tokens"]["val"]:,} tokens')
    for label, text in provenance(meta):
        print(f'  {label}: {text}')
    print(f'took {seconds:.1f} s, {meta["bytes"] / 1e6 / max(seconds, 1e-9):.1f} MB/s')


if __name__ == '__main__':
    main(sys.argv[1:])
