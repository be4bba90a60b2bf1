"""
A corpus as a stream of documents: the files under the paths a user names, read one document at a
time whatever their format. data/prepare.py tokenizes what this yields.

    stats = Stats()
    files = find_files(['books/', 'web/*.jsonl.zst'], stats)   # [(path, size)]
    for text, where, last in read_documents(files[0][0], 'text', stats): ...

Formats, by extension (after .gz or .zst, which are decompressed as a stream):
- .jsonl: one document per line, from the field text_key
- .parquet: one document per row of the column text_key, read a row group at a time
- anything else that is text: one document per file. A file whose first 8 KiB hold a NUL byte is
  binary: inside a folder it is skipped and counted, named on its own it is refused.
Invalid UTF-8 is decoded with U+FFFD in its place, and the files that had some are counted. A text
file larger than PIECE comes in pieces cut after a newline that a non-space follows, where neither
GPT-2's nor GPT-4's pre-tokenizer ever joins two characters: its tokens are those of the whole.
"""
import codecs
import collections
import glob
import gzip
import io
import json
import os
import shutil
import stat
import tempfile

PIECE = 8 << 20  # characters of text handed on at a time: what a document costs in memory, at most
SNIFF = 8192  # bytes looked at for a NUL, as git does to tell binary files
UNREADABLE = {'.bz2', '.xz', '.lzma', '.zip', '.7z', '.rar', '.tar', '.tgz', '.pdf', '.doc', '.docx', '.odt',
              '.epub', '.xls', '.xlsx', '.ppt', '.pptx'}


class CorpusError(Exception):
    """Input that cannot be used; the message is one line naming the file (and line or row)."""


class Stats:
    """What reading the corpus met: what was skipped and why, and the bytes read so far (of the
    files as they are on disk, compressed or not), for progress."""

    def __init__(self):
        self.skipped = collections.Counter()  # 'binary files': 3, ...
        self.replaced = set()  # files with invalid UTF-8, decoded with replacement
        self.binary = set()  # files found to be binary, and skipped
        self.done, self.raw = 0, None  # the bytes of the files read whole; the file being read

    def merge(self, other):
        """Add what another Stats met (a worker's)."""
        self.skipped.update(other.skipped)
        self.replaced |= other.replaced
        self.binary |= other.binary

    @property
    def bytes_read(self):
        return self.done + (self.raw.tell() if self.raw is not None and not self.raw.closed else 0)


# ---------------------------------------------------------------------- finding the files

def find_files(paths, stats):
    """[(path, size)] of the files that paths name (files, folders searched recursively, globs),
    each once, in a deterministic order: the paths' order, and sorted within a folder or a glob.
    Hidden files and folders (a name starting with '.') inside a folder are skipped and counted."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            found += walk(path, stats)
        elif os.path.exists(path):
            check_readable(path, explicit=True)
            found.append(path)
        elif glob.has_magic(path):
            matches = sorted(glob.glob(path, recursive=True))
            if not matches:
                raise CorpusError(f'{path}: no file matches')
            for match in matches:
                if os.path.isdir(match):
                    found += walk(match, stats)
                elif check_readable(match, explicit=False, stats=stats):
                    found.append(match)
        else:
            raise CorpusError(f'{path}: no such file or folder')
    seen, files = set(), []
    for path in found:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:  # a file named twice is read once
            seen.add((st.st_dev, st.st_ino))
            files.append((path, st.st_size))
    if not files:
        raise CorpusError(f'no file found in {", ".join(paths)}')
    return files


def walk(folder, stats):
    files = []
    for root, dirs, names in os.walk(folder):
        hidden = [d for d in dirs if d.startswith('.')]
        if hidden:
            stats.skipped['hidden folders'] += len(hidden)
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        for name in sorted(names):
            if name.startswith('.'):
                stats.skipped['hidden files'] += 1
            elif check_readable(name, explicit=False, stats=stats):
                files.append(os.path.join(root, name))
    return files


def split_name(path):
    """(format, compression) from the file name: 'jsonl', 'parquet', 'text' or 'unreadable'; None,
    '.gz' or '.zst'."""
    base, ext = os.path.splitext(path.lower())
    compression = ext if ext in ('.gz', '.zst') else None
    if compression:
        base, ext = os.path.splitext(base)
    return {'.jsonl': 'jsonl', '.parquet': 'parquet'}.get(ext, 'unreadable' if ext in UNREADABLE else 'text'), compression


def check_readable(path, explicit, stats=None):
    """True if path has a format we read. Named on its own, a file we cannot read is refused;
    met inside a folder or a glob, it is skipped and counted."""
    if split_name(path)[0] != 'unreadable':
        return True
    ext = os.path.splitext(path)[1].lower()
    if explicit:
        raise CorpusError(f'{path}: {ext} is a format prepare cannot read (it reads text, .jsonl and .parquet, '
                          'each also as .gz or .zst)')
    stats.skipped[f'{ext} files (a format prepare cannot read)'] += 1
    return False


# ---------------------------------------------------------------------- reading the documents

replacements = 0  # invalid UTF-8 sequences decoded as U+FFFD so far


def replace(error):
    global replacements
    replacements += 1
    return '\ufffd', error.end


codecs.register_error('corpus_replace', replace)


def read_documents(path, text_key, stats, scratch=None, explicit=False):
    """(text, where, last) for each document of the file, in order. where names the file, and the
    line or row; last is False for all but the last piece of a large text document. A compressed
    parquet file is unpacked into an unnamed temporary file in scratch (parquet reads by seeking)."""
    kind, compression = split_name(path)
    before = replacements
    try:
        with open(path, 'rb') as raw:
            stats.raw = raw
            f = raw
            if compression == '.gz':
                f = gzip.GzipFile(fileobj=raw)
            elif compression == '.zst':
                import zstandard  # only for .zst files
                f = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True), 1 << 20)
            if kind == 'parquet':
                yield from read_parquet(f, path, text_key, stats, scratch)
            elif kind == 'jsonl':
                yield from read_jsonl(f, path, text_key, stats)
            else:
                yield from read_text(f, path, stats, explicit)
    except CorpusError:
        raise
    except (OSError, EOFError, ValueError) as e:  # unreadable, truncated or corrupt compression
        raise CorpusError(f'{path}: cannot be read: {" ".join(str(e).split()) or type(e).__name__}') from None
    finally:
        stats.raw = None
    stats.done += os.path.getsize(path)
    if replacements != before:
        stats.replaced.add(path)


def read_up_to(f, n):
    """Up to n bytes, read 256 KiB at a time: read(n) would make room for all n however short the file."""
    chunks, size = [], 0
    while size < n and (chunk := f.read(min(1 << 18, n - size))):
        chunks.append(chunk)
        size += len(chunk)
    return b''.join(chunks)


def read_text(f, path, stats, explicit):
    text = f.read(SNIFF)
    if b'\0' in text:
        if explicit:
            raise CorpusError(f'{path}: a binary file (a NUL byte in its first {SNIFF} bytes), not text')
        stats.skipped['binary files'] += 1
        stats.binary.add(path)
        return
    if len(text) == SNIFF:
        text += read_up_to(f, PIECE)
    more = f.read(1) if len(text) > SNIFF else b''
    if not more:  # most files: one document in one piece
        if text:
            yield text.decode('utf-8-sig', 'corpus_replace'), path, True  # -sig: a byte order mark is no text
        else:
            stats.skipped['empty documents'] += 1
        return
    decode = codecs.getincrementaldecoder('utf-8-sig')(errors='corpus_replace')
    pending = decode.decode(text + more)
    while True:
        block = read_up_to(f, PIECE)
        pending += decode.decode(block, final=not block)
        if not block:
            break
        if len(pending) >= PIECE:
            cut = safe_cut(pending)
            yield pending[:cut], path, False
            pending = pending[cut:]
    yield pending, path, True


def safe_cut(text):
    """Where text can be cut without changing its BPE tokens: after the last newline that a
    non-space follows. Text with no such place (a file of one huge line) is cut at its end."""
    cut = len(text) - 1
    while True:
        cut = text.rfind('\n', 0, cut)
        if cut < 0:
            return len(text)
        if not text[cut + 1].isspace():
            return cut + 1


def read_jsonl(f, path, text_key, stats):
    for number, line in enumerate(f, 1):
        line = line.decode('utf-8-sig' if number == 1 else 'utf-8', 'corpus_replace')  # -sig: a byte order mark
        if not line.strip():
            continue
        where = f'{path}, line {number}'
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f'{where}: not JSON ({e.msg})') from None
        if not isinstance(record, dict) or text_key not in record:
            raise CorpusError(f'{where}: no field {text_key!r} (choose the field with --text_key)')
        text = record[text_key]
        if text is None or text == '':
            stats.skipped['empty documents'] += 1
            continue
        if not isinstance(text, str):
            raise CorpusError(f'{where}: field {text_key!r} is {type(text).__name__}, not text')
        yield text, where, True


def read_parquet(f, path, text_key, stats, scratch):
    import pyarrow as pa
    import pyarrow.parquet as pq
    if split_name(path)[1]:  # parquet reads by seeking: unpack a compressed one first
        unpacked = tempfile.TemporaryFile(dir=scratch)
        shutil.copyfileobj(f, unpacked, 1 << 20)
        unpacked.seek(0)
        f = unpacked
    try:
        pf = pq.ParquetFile(f)
    except (pa.ArrowException, OSError) as e:
        raise CorpusError(f'{path}: not a parquet file ({" ".join(str(e).split())[:200]})') from None
    names = pf.schema_arrow.names
    if text_key not in names:
        raise CorpusError(f'{path}: no column {text_key!r} (it has {", ".join(names[:10])}; '
                          'choose one with --text_key)')
    column_type = pf.schema_arrow.field(text_key).type
    if not (pa.types.is_string(column_type) or pa.types.is_large_string(column_type)):
        raise CorpusError(f'{path}: column {text_key!r} is {column_type}, not text')
    row = 0
    for group in range(pf.num_row_groups):
        for text in pf.read_row_group(group, columns=[text_key]).column(0).to_pylist():
            row += 1
            if not text:
                stats.skipped['empty documents'] += 1
            else:
                yield text, f'{path}, row {row}', True
