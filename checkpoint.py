"""
Checkpoints that survive what a cluster does to a run: a save is whole or leaves the previous
checkpoint as it was, a damaged file is found before it is used, and an older intact one is kept
to fall back on. train.py writes and resumes with it, sample.py reads with it.

    write_checkpoint(checkpoint, 'out')                  # a dict: model, optimizer, iter_num, ...
    path, checkpoint, notes = load_checkpoint('out', map_location='cpu')

In out_dir:
- ckpt.pt       the newest checkpoint, exactly what torch.save writes: nanoGPT and torch.load read it
- ckpt_prev.pt  the one ckpt.pt replaced (keep_previous=True): the fallback when ckpt.pt is damaged
- ckpt.sha256   the sha256 of each, in sha256sum's format (`cd out && sha256sum -c ckpt.sha256`),
                computed while the file is written, in the same pass

A file is intact when its sha256 is one that ckpt.sha256 lists. A save lists the new file's sum
before the renames that put it in place and drops the replaced one's after them, so a crash at any
point leaves every file in place listed. A checkpoint with no sum listed (written by nanoGPT, or
before sums existed) is loaded unchecked, with a note saying so.

Loading runs no code: torch.load(weights_only=True) builds tensors, dicts, lists, strings and
numbers (all that train.py and nanoGPT save: weights, AdamW's or Muon's state, model_args,
config, the GradScaler's state) and refuses any other class or function a pickle names, before it
is imported. A checkpoint that names one is refused outright, never swapped for an older one:
someone made it, and the user should know.
"""
import contextlib
import hashlib
import os
import pickle
import re

import torch

NAME, PREVIOUS, SUMS = 'ckpt.pt', 'ckpt_prev.pt', 'ckpt.sha256'


class CheckpointError(Exception):
    """No intact checkpoint to load, or one that must not be written. The message is one line naming
    the files and what is wrong."""


def find_checkpoints(out_dir):
    """The checkpoint files in out_dir, newest first."""
    paths = [os.path.join(out_dir, name) for name in (NAME, PREVIOUS)]
    return [path for path in paths if os.path.exists(path)]


def write_checkpoint(checkpoint, out_dir, keep_previous=True):
    """Write checkpoint (a dict) to out_dir/ckpt.pt, keeping the one it replaces as ckpt_prev.pt.
    Raises what went wrong (OSError for a full disk); then the files in place are as they were and
    no temporary file is left. A tensor holding a NaN or an infinity is refused (CheckpointError)
    before anything is written: it would replace a good checkpoint with one that cannot train."""
    bad = nonfinite(checkpoint)
    if bad:
        raise CheckpointError(f'non-finite values in {bad}')
    path, previous = os.path.join(out_dir, NAME), os.path.join(out_dir, PREVIOUS)
    sums = read_sums(out_dir)
    had = os.path.exists(path)
    moved = keep_previous and had
    def make_way(): # once the new file is on disk: list its sum, then move the one it replaces
        write_sums(out_dir, sums + [(hashed.sha256.hexdigest(), NAME)])
        if moved:
            os.replace(path, previous)
    with atomic_file(path, 'wb', before_replace=make_way) as f:
        hashed = HashingFile(f)
        try:
            torch.save(checkpoint, hashed)
        except RuntimeError:
            if hashed.error: # torch's writer wraps the OSError that says what happened (disk full)
                raise hashed.error from None
            raise
    # ckpt_prev.pt's sums: ckpt.pt's if it just moved there, else its own; and ckpt.pt's too where
    # ckpt.pt was missing, moved there by a save that a crash cut short. Such a crash may leave a
    # name a second, stale sum (of a file that never took its place): it is gone two saves later.
    names = (NAME,) if moved else (PREVIOUS,) if had else (PREVIOUS, NAME)
    kept = [(h, PREVIOUS) for h, name in sums if name in names]
    write_sums(out_dir, [(hashed.sha256.hexdigest(), NAME)] + (kept if os.path.exists(previous) else []))


def load_checkpoint(out_dir, map_location='cpu'):
    """(path, checkpoint, notes): the newest checkpoint in out_dir that is intact. notes are lines for
    the user: an older checkpoint taken because the newest is damaged, or a checkpoint loaded
    unchecked. Raises CheckpointError when there is none."""
    sums = read_sums(out_dir)
    listed, named = {digest for digest, _ in sums}, {name for _, name in sums}
    sums_path = os.path.join(out_dir, SUMS)
    problems, notes = [], []
    for path in find_checkpoints(out_dir):
        digest = file_sha256(path)
        if digest not in listed and os.path.basename(path) in named:
            problems.append(f'{path} is damaged: its sha256 is not the one {sums_path} recorded when it was saved '
                            '(a truncated or corrupted copy)')
            continue
        if digest not in listed:
            notes.append(f'{path} has no sha256 in {sums_path} (saved by nanoGPT, or before checksums): '
                         'loaded unchecked')
        try:
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            held = re.search(r'GLOBAL ([\w.]+)', str(e))
            if not held:
                problems.append(f'{path} cannot be read: {first_sentence(e)}')
                continue
            name = held.group(1) if '.' in held.group(1) else f'builtins.{held.group(1)}'  # torch drops 'builtins.'
            # not damage but a file made to run something: no older checkpoint is taken in its place
            raise CheckpointError(f'{path} is refused: it holds {name}, which loading would import and '
                                  'run; a checkpoint may hold only tensors and plain data, as those of train.py '
                                  'and nanoGPT do') from None
        except Exception as e:
            problems.append(f'{path} cannot be read: {first_sentence(e)}')
            continue
        if not isinstance(checkpoint, dict) or not {'model', 'model_args'} <= checkpoint.keys():
            problems.append(f'{path} is not a checkpoint of train.py: it has no model or model_args')
            continue
        if problems:
            notes.append(f'{"; ".join(problems)}: using {path} instead')
        return path, checkpoint, notes
    if not problems:
        raise CheckpointError(f'no checkpoint in {out_dir}')
    if len(problems) == 1:
        problems.append(f'no older checkpoint is kept (if {NAME} was replaced on purpose, delete {sums_path})')
    raise CheckpointError('; '.join(problems))


class HashingFile:
    """The file torch.save writes through: each chunk is hashed on its way to the disk."""
    def __init__(self, f):
        self.f, self.sha256, self.error = f, hashlib.sha256(), None

    def write(self, data):
        try:
            written = self.f.write(data)
        except OSError as e:
            self.error = e
            raise
        self.sha256.update(data)
        return written

    def flush(self):
        self.f.flush()


def file_sha256(path):
    sha256 = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(1 << 24):
            sha256.update(chunk)
    return sha256.hexdigest()


def read_sums(out_dir):
    """[(sha256, name)] from out_dir/ckpt.sha256; [] when there is none. Lines that are not sums are skipped."""
    try:
        with open(os.path.join(out_dir, SUMS), encoding='utf-8', errors='replace') as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    pairs = [line.split('  ', 1) for line in lines]
    return [(digest, name) for digest, name in (p for p in pairs if len(p) == 2) if len(digest) == 64]


def write_sums(out_dir, sums):
    with atomic_file(os.path.join(out_dir, SUMS), 'w') as f:
        f.writelines(f'{digest}  {name}\n' for digest, name in sums)


@contextlib.contextmanager
def atomic_file(path, mode, before_replace=lambda: None):
    """Write path whole or not at all: the bytes go to path.tmp, which takes path's place once they
    are on disk and before_replace() has run, and the rename is made durable. On any failure the
    temporary file is removed and path is as it was."""
    tmp = path + '.tmp'
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        before_replace()
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    fd = os.open(os.path.dirname(path) or '.', os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def nonfinite(tree, where='checkpoint'):
    """Where the first tensor holding a NaN or an infinity is in a checkpoint's dicts and lists, or None."""
    tensors = {}
    def walk(node, where):
        if isinstance(node, torch.Tensor) and node.is_floating_point():
            tensors[where] = node
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, f'{where}[{k!r}]')
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, f'{where}[{i}]')
    walk(tree, where)
    # a NaN or an infinity shows in a tensor's extremes, which aminmax finds 30x faster than
    # isfinite().all() on a CPU; and one look at the results per device, not one per tensor
    extremes = {}
    for t in tensors.values():
        if t.numel():
            extremes.setdefault(t.device, []).extend(e.float() for e in torch.aminmax(t))
    if all(bool(torch.isfinite(torch.stack(ends)).all()) for ends in extremes.values()):
        return None
    return next(w for w, t in tensors.items() if not bool(torch.isfinite(t).all()))


def first_sentence(error):
    """The gist of an error as one line: torch's unpickling errors run on for a paragraph."""
    text = ' '.join(str(error).split()) or type(error).__name__
    return text.split('. ')[0][:300]
