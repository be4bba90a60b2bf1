"""
A corpus as a stream of documents: the files under the paths a user names, read one document at a
time whatever their format. data/prepare.py tokenizes what this yields.

    files = find_files(['books/', 'web/*.jsonl.zst'], stats)
    for text, where, last in read_documents(files[0], 'text', stats): ...

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
import tempfile

PIECE = 8 << 20  # bytes of text handed on at a time: what a document costs in memory, at most
SNIFF = 8192  # bytes looked at for a NUL, as git does to tell binary files
UNREADABLE = {'.bz2', '.xz', '.lzma', '.zip', '.7z', '.rar', '.tar', '.tgz', '.pdf', '.doc', '.docx', '.odt',
              '.epub', '.xls', '.xlsx', '.ppt', '.pptx'}


class CorpusError(Exception):
    """Input that cannot be used; the message is one line naming the file (and line or row)."""


class Stats:
    """What reading the corpus met: the bytes read (for progress) and what was skipped, and why."""

    def __init__(self):
        self.bytes_read = 0
        self.skipped = collections.Counter()  # 'binary files': 3, ...
        self.replaced = set()  # files with invalid UTF-8, decoded with replacement
        self.binary = []  # files found to be binary, and skipped


# ---------------------------------------------------------------------- finding the files

def find_files(paths, stats):
    """The files that paths name (files, folders searched recursively, globs), each once, in a
    deterministic order: the paths' order, and sorted within a folder or a glob. Hidden files and
    folders (a name starting with '.') inside a folder are skipped and counted."""
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
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            files.append(path)
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
            path = os.path.join(root, name)
            if name.startswith('.'):
                stats.skipped['hidden files'] += 1
            elif os.path.isfile(path) and check_readable(path, explicit=False, stats=stats):
                files.append(path)
    return files


def split_name(path):
    """(format, compression) from the file name: 'jsonl', 'parquet' or 'text'; None, '.gz' or '.zst'."""
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

class Counted(io.RawIOBase):
    """A file's raw bytes, counted into stats.bytes_read as they are read (progress and ETA)."""

    def __init__(self, f, stats):
        self.f, self.stats = f, stats

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):  # parquet reads its footer first
        return self.f.seek(offset, whence)

    def tell(self):
        return self.f.tell()

    def readinto(self, buffer):
        n = self.f.readinto(buffer)
        self.stats.bytes_read += n or 0
        return n

    def close(self):
        self.f.close()
        super().close()


def open_bytes(path, stats):
    """A binary stream of the file's content, decompressed as it is read."""
    compression = split_name(path)[1]
    raw = io.BufferedReader(Counted(open(path, 'rb', buffering=0), stats), 1 << 20)
    if compression == '.gz':
        return gzip.GzipFile(fileobj=raw)
    if compression == '.zst':
        import zstandard  # only for .zst files
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True), 1 << 20)
    return raw


replacements = 0  # invalid UTF-8 sequences decoded as U+FFFD so far


def replace(error):
    global replacements
    replacements += 1
    return '\ufffd', error.end


codecs.register_error('corpus_replace', replace)


def decoder():
    """An incremental UTF-8 decoder that puts U+FFFD for invalid bytes, and counts them."""
    return codecs.getincrementaldecoder('utf-8')(errors='corpus_replace')


def read_documents(path, text_key, stats, scratch=None, explicit=False):
    """(text, where, last) for each document of the file, in order. where names the file, and the
    line or row; last is False for all but the last piece of a large text document. A compressed
    parquet file is unpacked into an unnamed temporary file in scratch (parquet reads by seeking)."""
    kind = split_name(path)[0]
    before = replacements
    try:
        with open_bytes(path, stats) as f:
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
    if replacements != before:
        stats.replaced.add(path)


def read_text(f, path, stats, explicit):
    head = f.read(SNIFF)
    if b'\0' in head:
        if explicit:
            raise CorpusError(f'{path}: a binary file (a NUL byte in its first {SNIFF} bytes), not text')
        stats.skipped['binary files'] += 1
        stats.binary.append(path)
        return
    decode = decoder()
    pending = decode.decode(head)
    while True:
        block = f.read(PIECE)
        pending += decode.decode(block, final=not block)
        if not block:
            break
        if len(pending) >= PIECE:
            cut = safe_cut(pending)
            yield pending[:cut], path, False
            pending = pending[cut:]
    if pending:
        yield pending, path, True
    else:
        stats.skipped['empty documents'] += 1


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
        line = line.decode('utf-8', errors='corpus_replace')
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
