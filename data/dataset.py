"""
A prepared dataset as train.py, sample.py and bench.py read it back: data/NAME/ holds train.bin and
val.bin (token ids, one after another) and meta.pkl (a dict saying how to read them).

meta.pkl is read as plain data only: a pickle can carry code that runs while it loads, and a
dataset folder is the kind of thing people download or share. nanoGPT's meta.pkl files (vocab_size,
itos, stoi) are plain data and load as before.

    meta = read_meta('data/shakespeare_char/meta.pkl')   # raises DatasetError, one line
    tokens = np.memmap('data/shakespeare_char/train.bin', dtype=token_dtype_of(meta), mode='r')
    tokenizer = dataset_tokenizer('data/shakespeare_char', meta)  # encode, decode, token_bytes
"""
import hashlib
import math
import os
import pickle

import numpy as np

from data.tokenizer import load_tokenizer


class DatasetError(Exception):
    """A dataset file that cannot be used; the message is one line naming it."""


class _Refused(pickle.UnpicklingError):
    pass


class _PlainData(pickle.Unpickler):
    """An unpickler for dicts, lists, tuples, sets, strings, bytes, numbers, bools and None: pickle
    builds those from its own opcodes, and anything else (a class, a function to call) goes through
    find_class, which refuses it before it is imported, let alone run."""

    def find_class(self, module, name):
        raise _Refused(f'{module}.{name}')


def read_meta(path):
    """The dict in a meta.pkl, which must be plain data and hold an int vocab_size."""
    try:
        with open(path, 'rb') as f:
            meta = _PlainData(f).load()
    except _Refused as e:
        raise DatasetError(f'{path} is refused: it holds {e}, which loading would import and run; '
                           'a meta.pkl may hold only plain data (dicts, lists, strings, numbers)') from None
    except (OSError, EOFError, ValueError, TypeError, IndexError, KeyError, pickle.UnpicklingError) as e:
        raise DatasetError(f'{path} cannot be read: {e or type(e).__name__}') from None
    if not isinstance(meta, dict) or not isinstance(meta.get('vocab_size'), int):
        raise DatasetError(f'{path} is not a dataset meta.pkl: it has no vocab_size')
    return meta


def open_dataset(data_dir, block_size):
    """(meta, the token files' dtype, {split: number of tokens}, each id's UTF-8 bytes) of the dataset
    in data_dir, or DatasetError in one line: a file missing, a split too short for a block."""
    meta_path = os.path.join(data_dir, 'meta.pkl')
    meta = read_meta(meta_path) if os.path.exists(meta_path) else {}
    dtype, tokens = token_dtype_of(meta), {}
    for split in ('train', 'val'):
        path = os.path.join(data_dir, f'{split}.bin')
        if not os.path.exists(path):
            here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), data_dir, 'prepare.py')
            raise DatasetError(f'{path} not found: prepare the data first with `python data/prepare.py YOUR_TEXT '
                               f'--dataset={os.path.basename(data_dir)}`'
                               + (f', or with `python {data_dir}/prepare.py`' if os.path.exists(here) else ''))
        tokens[split] = os.path.getsize(path) // dtype.itemsize
        if tokens[split] <= block_size:
            raise DatasetError(f'{path} holds too few tokens for block_size={block_size}')
    return meta, dtype, tokens, dataset_tokenizer(data_dir, meta).token_bytes()


class Batches:
    """(x, y) tensors of windows of block_size tokens of a prepared dataset, y one token later, on the
    device. A random batch is a pure function of the seed and its key, so a resumed run draws
    exactly the batches an uninterrupted one would have. (torch is imported where it is used:
    data/prepare.py imports this module too, and needs no torch.)"""

    def __init__(self, data_dir, dtype, block_size, batch_size, device, seed):
        self.data_dir, self.dtype, self.block_size, self.batch_size = data_dir, dtype, block_size, batch_size
        self.device, self.seed = device, seed

    def tokens(self, split):
        # a new np.memmap every batch: one kept open grows in memory as it is read (a numpy leak)
        return np.memmap(os.path.join(self.data_dir, f'{split}.bin'), dtype=self.dtype, mode='r')

    def random(self, split, *key):
        """batch_size windows starting where a generator seeded by (seed, split, *key) says."""
        import torch
        data = self.tokens(split)
        digest = hashlib.blake2b(repr((self.seed, split) + key).encode(), digest_size=8).digest()
        g = torch.Generator().manual_seed(int.from_bytes(digest, 'little') >> 1)
        return self.windows(data, torch.randint(len(data) - self.block_size, (self.batch_size,), generator=g).numpy())

    def strided(self, split, stride):
        """The same windows every time, every stride tokens, in batches: no sampling noise."""
        data = self.tokens(split)
        starts = np.arange(0, len(data) - self.block_size, stride)
        chunks = np.array_split(starts, math.ceil(len(starts) / self.batch_size))
        return [lambda chunk=chunk: self.windows(data, chunk) for chunk in chunks]

    def windows(self, data, starts):
        import torch
        xy = torch.from_numpy(data[starts[:, None] + np.arange(self.block_size + 1)].astype(np.int64))
        x, y = xy[:, :-1].contiguous(), xy[:, 1:].contiguous()
        if self.device.startswith('cuda'):  # pinned, so that the copy to the GPU is asynchronous
            return x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device), y.to(self.device)


def token_dtype_of(meta):
    """The dtype of the dataset's token files: what meta.pkl records, else uint16 (nanoGPT's and
    this project's older datasets, whose vocabularies all fit)."""
    return np.dtype((meta or {}).get('dtype', 'uint16'))


def dataset_tokenizer(data_dir, meta):
    """The dataset's tokenizer (GPT-2's where there is no meta.pkl), or DatasetError in one line."""
    try:
        return load_tokenizer(data_dir, meta)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise DatasetError(f'the tokenizer of {data_dir} cannot be loaded: {" ".join(str(e).split())[:300]}') from None


SAMPLE = 32 << 20  # bytes: a train.bin up to twice this is hashed whole, a larger one at both ends


def identity(data_dir, meta):
    """What tells this dataset from any other, for a checkpoint to record: its name; `tokens`, a
    sha256 of its tokens (of the corpus, where data/prepare.py recorded that; else of train.bin,
    whole, or its size and first and last SAMPLE bytes for a big one, which costs two reads where the
    whole could be many GB); and `vocab`, a sha256 of its vocabulary."""
    tokens = hashlib.sha256()
    if 'sha256' in meta:
        tokens.update(meta['sha256'].encode())
    else:
        with open(os.path.join(data_dir, 'train.bin'), 'rb') as f:
            size = os.fstat(f.fileno()).st_size
            tokens.update(str(size).encode())
            tokens.update(f.read(2 * SAMPLE))
            if size > 2 * SAMPLE:
                f.seek(size - SAMPLE)
                tokens.update(f.read())
    return {'dataset': os.path.basename(os.path.normpath(data_dir)), 'tokens': tokens.hexdigest(),
            'vocab': vocab_sha256(data_dir, meta)}


def vocab_sha256(data_dir, meta):
    """A sha256 of the dataset's vocabulary: what its ids decode to."""
    vocab = hashlib.sha256(repr((meta.get('vocab_size'), meta.get('tokenizer'), meta.get('itos'))).encode())
    bpe = os.path.join(data_dir, 'tokenizer.tiktoken')
    if os.path.exists(bpe):
        with open(bpe, 'rb') as f:
            vocab.update(f.read())
    return vocab.hexdigest()


def provenance(meta):
    """What data/prepare.py recorded of a dataset's making, as (label, text) pairs; fewer for
    nanoGPT's datasets and this project's older ones, which recorded less."""
    parts = []
    if 'tokenizer' in meta or 'stoi' in meta:
        name = meta.get('tokenizer', 'char' if 'stoi' in meta else 'gpt2')
        parts.append(('tokenizer', f"{name} ({meta['vocab_size']:,} tokens, {token_dtype_of(meta)})"))
    if 'files' in meta:
        parts.append(('sources', f"{meta['files']:,} files, {meta['bytes'] / 1e6:,.1f} MB, sha256 {meta['sha256']}"))
    if meta.get('split') == 'position':
        parts.append(('documents', '1, split by position (its end is val)'))
    elif 'documents' in meta:
        parts.append(('documents', f"{meta['documents']['train']:,} train, {meta['documents']['val']:,} val"))
    if meta.get('skipped'):
        parts.append(('skipped', ', '.join(f'{what}: {n:,}' for what, n in meta['skipped'].items())))
    return parts
