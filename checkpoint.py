"""
Checkpoints that survive what a cluster does to a run: a save is whole or leaves the previous
checkpoint as it was, a damaged file is found before it is used, and an older intact one is kept
to fall back on. train.py writes and resumes with it, sample.py reads with it.

    write_checkpoint(checkpoint, 'out')                  # a dict: model, optimizer, iter_num, ...
    path, checkpoint, notes = load_checkpoint('out', map_location='cpu')
    python checkpoint.py export out model.pt             # the newest, as one nanoGPT-style file

In out_dir, the newest checkpoint and the one before it, each a file or a folder:
- ckpt.pt, ckpt_prev.pt  one process or DDP: exactly what torch.save writes (nanoGPT and torch.load
                         read it)
- ckpt/, ckpt_prev/      FSDP: torch.distributed.checkpoint's files, each rank's shards and the
                         .metadata, and state.json (iter_num, model_args, config, ...): no rank ever
                         holds the whole model. Any world size resumes from it, and so does one
                         process; sample.py reads it, and `export` turns it into one file
- ckpt.sha256            the sha256 of every file of both, in sha256sum's format (`cd out && sha256sum
                         -c ckpt.sha256`), computed as the files are written

A save puts its checkpoint in place as the newest, whichever kind the newest was; that one becomes
the previous and the older previous goes. The sums of the new files and the moved ones' new names
are listed before anything moves, and the names gone are dropped after, so a crash at any point
leaves every file in place listed. A file is intact when its sha256 is one listed for its name; a
checkpoint with no sum listed (written by nanoGPT, or before sums existed) is loaded unchecked,
with a note saying so.

Loading runs no code: torch.load(weights_only=True) builds tensors, dicts, lists, strings and
numbers (all that train.py and nanoGPT save: weights, AdamW's or Muon's state, model_args,
config, the GradScaler's state) and refuses any other class or function a pickle names, before it
is imported. A checkpoint that names one is refused outright, never swapped for an older one:
someone made it, and the user should know. A sharded checkpoint's .metadata is read the same way,
with only torch.distributed.checkpoint's own record classes allowed.
"""
import contextlib
import hashlib
import json
import os
import pickle
import re
import shutil
import sys
import warnings

import torch

NAME, PREVIOUS, FOLDER, PREVIOUS_FOLDER, SUMS = 'ckpt.pt', 'ckpt_prev.pt', 'ckpt', 'ckpt_prev', 'ckpt.sha256'
NEWEST, OLDER = (NAME, FOLDER), (PREVIOUS, PREVIOUS_FOLDER)


class CheckpointError(Exception):
    """No intact checkpoint to load, or one that must not be written. The message is one line naming
    the files and what is wrong."""


def check_out_dir(out_dir):
    """Refuse, in one line, an out_dir that cannot become a folder this process writes: out_dir is
    made only later, so its nearest existing folder must allow it."""
    existing = os.path.abspath(out_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise CheckpointError(f'out_dir {out_dir!r} cannot be a directory: {existing} is a file')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CheckpointError(f'out_dir {out_dir!r} cannot be written: no permission in {existing}')


def start_from(init_from, out_dir, eval_only=False):
    """(init_from made definite, the checkpoints in out_dir newest first). 'auto' resumes where out_dir
    holds a checkpoint and starts from scratch otherwise: one command line for the first start and
    every restart. CheckpointError where a run would resume from nothing, or start over a checkpoint."""
    found = find_checkpoints(out_dir)
    if init_from == 'auto':
        init_from = 'resume' if found else 'scratch'
    if init_from == 'resume' and not found:
        raise CheckpointError(f'--init_from=resume: no checkpoint in {out_dir} (set --out_dir to the run to resume)')
    if init_from != 'resume' and not eval_only and found:
        raise CheckpointError(f'{found[0]} already holds a checkpoint: continue it with --init_from=resume, or with '
                              '--init_from=auto (resumes when out_dir holds a checkpoint, starts otherwise: for '
                              'torchrun --max-restarts and SLURM requeues), or pick another --out_dir')
    return init_from, found


def find_checkpoints(out_dir):
    """The checkpoints in out_dir (files or folders), newest first."""
    paths = [os.path.join(out_dir, name) for name in NEWEST + OLDER]
    return [path for path in paths if os.path.exists(path)]


def write_checkpoint(checkpoint, out_dir, keep_previous=True):
    """Write checkpoint (a dict) to out_dir/ckpt.pt, keeping the one it replaces as the previous.
    Raises what went wrong (OSError for a full disk); then the files in place are as they were and
    no temporary file is left. A tensor holding a NaN or an infinity is refused (CheckpointError)
    before anything is written: it would replace a good checkpoint with one that cannot train."""
    bad = nonfinite(checkpoint)
    if bad:
        raise CheckpointError(f'non-finite values in {bad}')
    tmp = os.path.join(out_dir, NAME + '.tmp')
    try:
        with open(tmp, 'wb') as f:
            hashed = HashingFile(f)
            try:
                torch.save(checkpoint, hashed)
            except RuntimeError:
                if hashed.error:  # torch's writer wraps the OSError that says what happened (disk full)
                    raise hashed.error from None
                raise
            f.flush()
            os.fsync(f.fileno())
        install(out_dir, tmp, NAME, [(hashed.sha256.hexdigest(), NAME)], keep_previous)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def commit_folder(out_dir, sums, keep_previous=True):
    """Put out_dir/ckpt.tmp/, a sharded checkpoint whose files are all written and synced, in place
    as out_dir/ckpt/; sums are its files' sha256 ({file name: sha256})."""
    tmp = os.path.join(out_dir, FOLDER + '.tmp')
    install(out_dir, tmp, FOLDER, [(digest, f'{FOLDER}/{name}') for name, digest in sorted(sums.items())],
            keep_previous)


def install(out_dir, tmp, name, sums, keep_previous):
    """tmp (a file or folder in out_dir) takes its place as name, the newest checkpoint; sums are
    [(sha256, name in out_dir)] of its files. The newest before it (ckpt.pt or ckpt/) becomes the
    previous (ckpt_prev.pt or ckpt_prev/), or goes without keep_previous; the older previous goes."""
    old = read_sums(out_dir)
    newest = next((n for n in NEWEST if os.path.exists(os.path.join(out_dir, n))), None)
    if newest:
        previous = PREVIOUS if newest == NAME else PREVIOUS_FOLDER
        kept = [(d, previous + n[len(newest):]) for d, n in old if within(n, newest)] if keep_previous else []
    else:  # a crash took the newest away mid-save: the previous stays the previous
        kept = [(d, n) for d, n in old if any(within(n, o) for o in OLDER)] if keep_previous else []
    write_sums(out_dir, old + sums + kept)  # every name a file has, or is about to have
    if newest:
        for older in OLDER:
            remove(os.path.join(out_dir, older))
        if keep_previous:
            os.replace(os.path.join(out_dir, newest), os.path.join(out_dir, previous))
        else:
            remove(os.path.join(out_dir, newest))
    os.replace(tmp, os.path.join(out_dir, name))
    sync_folder(out_dir)
    if not keep_previous:
        for older in OLDER:
            remove(os.path.join(out_dir, older))
    write_sums(out_dir, sums + kept)


def within(name, top):
    """Whether name (in ckpt.sha256) is the file top or a file in the folder top."""
    return name == top or name.startswith(top + '/')


def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def load_checkpoint(out_dir, map_location='cpu'):
    """(path, checkpoint, notes): the newest checkpoint in out_dir that is intact. For a sharded one
    (a folder) checkpoint holds its state.json, and 'sharded' its path: read_sharded loads its
    tensors. notes are lines for the user: an older checkpoint taken because the newest is damaged,
    or a checkpoint loaded unchecked. Raises CheckpointError when there is none."""
    sums = read_sums(out_dir)
    sums_path = os.path.join(out_dir, SUMS)
    problems, notes = [], []
    for path in find_checkpoints(out_dir):
        problem, unchecked = check(path, out_dir, sums)
        if problem:
            problems.append(f'{path} is damaged: {problem}')
            continue
        if unchecked:
            notes.append(f'{path} has no sha256 in {sums_path} (saved by nanoGPT, or before checksums): '
                         'loaded unchecked')
        try:
            checkpoint = read_state(path) if os.path.isdir(path) else torch.load(path, map_location=map_location,
                                                                                weights_only=True)
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


def check(path, out_dir, sums):
    """(what is wrong with the checkpoint at path, or None; whether no sums are listed for it)."""
    top, sums_path = os.path.relpath(path, out_dir), os.path.join(out_dir, SUMS)
    listed = {}
    for digest, name in sums:
        if within(name, top):
            listed.setdefault(name, set()).add(digest)
    if not listed:
        return None, True
    if not os.path.isdir(path):
        if file_sha256(path) not in listed.get(top, ()):
            return f'its sha256 is not the one {sums_path} recorded when it was saved (a truncated or corrupted copy)', False
        return None, False
    files = {f'{top}/{name}' for name in os.listdir(path)}
    for name in sorted(set(listed) - files):
        return f'{name}, which {sums_path} lists, is missing (an incomplete copy)', False
    for name in sorted(files):
        if name not in listed:
            return f'{name} is not in {sums_path} (a file that was not saved with it)', False
        if file_sha256(os.path.join(out_dir, name)) not in listed[name]:
            return (f'the sha256 of {name} is not the one {sums_path} recorded when it was saved (a truncated or '
                    'corrupted copy)'), False
    return None, False


def read_state(folder):
    """A sharded checkpoint's state.json, with 'model' standing for its shards; its .metadata is
    read too, to refuse one that names a class it should not (pickle.UnpicklingError)."""
    read_metadata(folder)
    with open(os.path.join(folder, 'state.json'), encoding='utf-8') as f:
        state = json.load(f)
    return {**state, 'model': None, 'sharded': folder}


def read_metadata(folder):
    with open(os.path.join(folder, '.metadata'), 'rb') as f:
        return SafeUnpickler(f).load()


class SafeUnpickler(pickle.Unpickler):
    """The classes a sharded checkpoint's .metadata is made of, and nothing else."""
    allowed = {('torch', 'Size'), ('pathlib', 'PosixPath'), ('pathlib', 'WindowsPath'),
               ('torch.serialization', '_get_layout'),
               ('torch.distributed.checkpoint.filesystem', '_StorageInfo')}

    def find_class(self, module, name):
        import torch.distributed.checkpoint.metadata  # noqa: F401 (the classes below)
        if ((module, name) in self.allowed or module == 'torch.distributed.checkpoint.metadata'
                or (module == 'torch' and isinstance(getattr(torch, name, None), torch.dtype))):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f'GLOBAL {module}.{name}')


def read_sharded(folder, target):
    """Load the tensors of the sharded checkpoint in folder into target ({'model': state dict, ...},
    the keys to load), resharded as target holds them: FSDP's shards at any world size, or whole
    tensors in one process. What it reads runs no code, as load_checkpoint's loads."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint._traverse import set_element
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

    class Reader(dcp.FileSystemReader):
        def read_metadata(self, *args, **kwargs):
            metadata = read_metadata(folder)
            metadata.storage_meta = metadata.storage_meta or dcp.metadata.StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    class Planner(DefaultLoadPlanner):
        def load_bytes(self, read_item, value):  # torch's own loads these with weights_only=False
            loaded = torch.load(value, weights_only=True)
            if self.flatten_state_dict:
                set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], loaded)
            else:
                self.state_dict[read_item.dest_index.fqn] = loaded

    alone = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    with warnings.catch_warnings():  # one process reading alone is what it is for: no warning to say so
        warnings.simplefilter('ignore', UserWarning)
        dcp.load(target, storage_reader=Reader(folder), planner=Planner(), no_dist=alone)


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
def atomic_file(path, mode):
    """Write path whole or not at all: the bytes go to path.tmp, which takes path's place once they
    are on disk, and the rename is made durable. On any failure the temporary file is removed and
    path is as it was."""
    tmp = path + '.tmp'
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    sync_folder(os.path.dirname(path))


def sync_folder(folder):
    """Make the renames in folder durable."""
    fd = os.open(folder or '.', os.O_RDONLY)
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


SHAPE = ('n_layer', 'n_head', 'n_embd', 'bias')  # and model.OPTIONS: what a resumed model keeps


def keep_shape(config, checkpoint):
    """A resume trains the checkpoint's shape, as nanoGPT does, whatever the command line asks: set
    each shape key of config that differs to the checkpoint's value, so that the log's config says
    what trains, and return a line for each saying so."""
    from model import OPTIONS, GPTConfig
    notes = []
    for k in (*SHAPE, *OPTIONS):
        kept = checkpoint['model_args'].get(k, getattr(GPTConfig, k))  # an option left out is GPT-2's
        if k in config and config[k] != kept:
            notes.append(f"{k}={config[k]!r} is not the checkpoint's {kept!r}: a resume keeps the checkpoint's shape, "
                         f"so {k}={kept!r} trains")
            config[k] = kept
    return notes


def describe(data):
    return f"{data['dataset']} (tokens sha256 {data['tokens'][:12]}, vocabulary sha256 {data['vocab'][:12]})"


def data_changed(checkpoint, data):
    """What differs between the data the checkpoint was trained on and data (data.dataset.identity's),
    as 'X, but now Y'; None when they are the same. An older checkpoint records only its dataset's name."""
    then = checkpoint.get('data')
    if then is None:
        name = (checkpoint.get('config') or {}).get('dataset')
        return None if name in (None, data['dataset']) else f"dataset {name}, but now {data['dataset']}"
    if then == data:
        return None
    return f'{describe(then)}, but now {describe(data)}'


def first_sentence(error):
    """The gist of an error as one line: torch's unpickling errors run on for a paragraph."""
    text = ' '.join(str(error).split()) or type(error).__name__
    return text.split('. ')[0][:300]


def export(out_dir, out_file):
    """The newest intact checkpoint of out_dir, sharded or not, as one file in nanoGPT's layout:
    model, model_args, iter_num, best_val_loss and config (no optimizer), which
    torch.load(weights_only=True) reads and nanoGPT's sample.py samples from."""
    from model import GPT, GPTConfig
    if os.path.exists(out_file):
        raise CheckpointError(f'{out_file} already exists: pick another name')
    folder = os.path.dirname(out_file) or '.'
    if not os.path.isdir(folder):
        raise CheckpointError(f'cannot write {out_file}: the folder {folder} does not exist')
    path, checkpoint, notes = load_checkpoint(out_dir)
    for note in notes:
        print(note, file=sys.stderr)
    weights = checkpoint['model']
    if 'sharded' in checkpoint:  # whole tensors in this one process, a tensor at a time as they come
        model = GPT(GPTConfig(**checkpoint['model_args']))
        target = {'model': model.state_dict()}
        read_sharded(path, target)
        weights = target['model']
    exported = {'model': weights, **{k: checkpoint.get(k) for k in ('model_args', 'iter_num', 'best_val_loss', 'config')}}
    try:
        with atomic_file(out_file, 'wb') as f:
            torch.save(exported, f)
    except OSError as e:  # no room, no permission
        raise CheckpointError(f'cannot write {out_file}: {e.strerror or e}') from None
    return path


if __name__ == '__main__':
    if len(sys.argv) != 4 or sys.argv[1] != 'export':
        print('usage: python checkpoint.py export OUT_DIR FILE.pt', file=sys.stderr)
        sys.exit(2)
    try:
        source = export(sys.argv[2], sys.argv[3])
    except CheckpointError as e:
        print(f'checkpoint.py: error: {e}', file=sys.stderr)
        sys.exit(2)
    print(f'exported {source} to {sys.argv[3]}')
