"""data/prepare.py: your own text, any format and tokenizer, into a dataset that train.py and sample.py use."""
import glob
import gzip
import hashlib
import json
import math
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from conftest import ROOT, TEXT, assert_refused, logs_in, script
from logger import read_log

sys.path.insert(0, ROOT)
from data.tokenizer import SEPARATOR, load_tokenizer  # noqa: E402

SMALL = ['--device=cpu', '--compile=False', '--n_layer=1', '--n_head=2', '--n_embd=32', '--block_size=16',
         '--batch_size=4', '--gradient_accumulation_steps=1', '--eval_iters=2', '--eval_interval=4', '--max_iters=4',
         '--warmup_iters=1', '--lr_decay_iters=4', '--learning_rate=1e-2', '--log_interval=1']


def documents(n, seed=0):
    """n different documents of a few hundred characters, some beyond ASCII."""
    rng = np.random.default_rng(seed)
    words = TEXT.split() + ['café', 'naïve', '日本', 'ﬁn', 'ok']
    return [' '.join(rng.choice(words, size=int(rng.integers(40, 90)))) + f' ({i})' for i in range(n)]


def write(path, data):
    """A file, compressed by its name's .gz or .zst."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = data.encode() if isinstance(data, str) else data
    if path.endswith('.gz'):
        data = gzip.compress(data)
    elif path.endswith('.zst'):
        data = zstandard.ZstdCompressor().compress(data)
    with open(path, 'wb') as f:
        f.write(data)


def jsonl(docs, key='text'):
    return ''.join(json.dumps({key: d, 'id': i}) + '\n' for i, d in enumerate(docs))


def parquet(path, docs, key='text', row_group_size=3):
    table = pa.table({key: docs, 'n': list(range(len(docs)))})
    if path.endswith(('.gz', '.zst')):
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, row_group_size=row_group_size)
        write(path, sink.getvalue().to_pybytes())
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pq.write_table(table, path, row_group_size=row_group_size)


def prepare(cwd, *args):
    return script('data/prepare.py', *args, cwd=cwd)


def dataset(cwd, name):
    """(meta, {'train': token ids, 'val': token ids}) of data/NAME."""
    folder = os.path.join(cwd, 'data', name)
    with open(os.path.join(folder, 'meta.pkl'), 'rb') as f:
        meta = pickle.load(f)
    return meta, {s: np.fromfile(os.path.join(folder, f'{s}.bin'), dtype=meta['dtype']) for s in ('train', 'val')}


def split_texts(cwd, name):
    """{'train': [document, ...], 'val': [...]}: each split decoded and cut at its separators."""
    meta, ids = dataset(cwd, name)
    tokenizer = load_tokenizer(os.path.join(cwd, 'data', name), meta)
    return {s: tokenizer.decode(ids[s]).split(SEPARATOR) for s in ids}


def goes_to_val(text, fraction=0.1):
    """The split's rule: a document is val when the first 8 bytes of its text's sha256 fall in the fraction."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], 'big') < fraction * 2 ** 64


def nothing_left(cwd, name):
    data = os.path.join(cwd, 'data')
    return not os.path.exists(os.path.join(data, name)) and not glob.glob(os.path.join(data, f'.{name}*'))


@pytest.fixture
def every_format(tmp_path):
    """A folder of 24 documents in every format prepare reads, compressed and not, with a binary
    file, a hidden file and a file of invalid UTF-8 among them; and the documents it holds."""
    docs = documents(24)
    corpus = str(tmp_path / 'corpus')
    write(f'{corpus}/a.txt', docs[0])
    write(f'{corpus}/notes/b.md', docs[1])
    write(f'{corpus}/notes/c.txt.gz', docs[2])
    write(f'{corpus}/notes/deeper/d.md.zst', docs[3])
    write(f'{corpus}/e.jsonl', jsonl(docs[4:8]) + '\n')  # a blank line is no document
    write(f'{corpus}/f.jsonl.gz', jsonl(docs[8:11]))
    write(f'{corpus}/g.jsonl.zst', jsonl(docs[11:14]))
    parquet(f'{corpus}/h.parquet', docs[14:19])
    parquet(f'{corpus}/i.parquet.gz', docs[19:21])
    parquet(f'{corpus}/j.parquet.zst', docs[21:23])
    write(f'{corpus}/k.txt', b'caf\xe9 au lait ' + docs[23][:50].encode())  # latin-1, not UTF-8
    write(f'{corpus}/model.bin', b'\x00\x01\x02' * 100)
    write(f'{corpus}/.hidden.txt', 'never read')
    expected = docs[:23] + ['caf\ufffd au lait ' + docs[23][:50]]
    return tmp_path, corpus, expected


def test_a_folder_of_every_format_becomes_its_documents_split_by_their_hash(every_format):
    cwd, corpus, expected = every_format
    r = prepare(cwd, corpus, '--dataset=mix', '--tokenizer=char', '--block_size=8', '--val_fraction=0.3')
    assert r.returncode == 0, r.stderr
    texts = split_texts(cwd, 'mix')
    assert sorted(texts['train'] + texts['val']) == sorted(expected)
    assert sorted(texts['val']) == sorted(d for d in expected if goes_to_val(d, 0.3))
    meta, ids = dataset(cwd, 'mix')
    assert meta['files'] == 11 and meta['documents'] == {s: len(texts[s]) for s in texts}
    assert meta['tokens'] == {s: len(ids[s]) for s in ids} and meta['dtype'] == 'uint16'
    assert meta['skipped'] == {'binary files': 1, 'hidden files': 1,
                               'files with invalid UTF-8 (decoded with replacement)': 1}
    # over every document's sha256, in the files' order: a folder's files by name, then its folders
    in_order = [expected[0]] + expected[4:] + expected[1:4]
    assert meta['sha256'] == hashlib.sha256(b''.join(hashlib.sha256(d.encode()).digest() for d in in_order)).hexdigest()
    for line in ('binary files: 1', 'hidden files: 1', 'files with invalid UTF-8 (decoded with replacement): 1',
                 f"{len(texts['train'])} train, {len(texts['val'])} val", 'char (', meta['sha256']):
        assert line in r.stdout


# slow: [bpe] proves the tiktoken path (val_bpb over the bytes a token spells, sampling) that gpt2 shares;
# test_adding_files_never_moves_a_document_... prepares with gpt2, the default
@pytest.mark.parametrize('tokenizer', ['char', pytest.param('gpt2', marks=pytest.mark.slow), 'bpe'])
def test_each_tokenizer_trains_logs_val_bpb_over_utf8_bytes_and_samples(tmp_path, tokenizer):
    for i, doc in enumerate(documents(40)):
        write(str(tmp_path / 'corpus' / f'{i}.txt'), doc)
    extra = ['--vocab_size=300'] if tokenizer == 'bpe' else []
    r = prepare(tmp_path, 'corpus', '--dataset=own', f'--tokenizer={tokenizer}', '--block_size=16', *extra)
    assert r.returncode == 0, r.stderr
    saved = tmp_path / 'data' / 'own' / 'tokenizer.tiktoken'
    assert saved.exists() == (tokenizer == 'bpe')
    if tokenizer == 'bpe':  # in tiktoken's own format: tiktoken reads it back (no cache: TIKTOKEN_CACHE_DIR='')
        code = ('import sys, tiktoken.load; ranks = tiktoken.load.load_tiktoken_bpe(sys.argv[1]); '
                'print(len(ranks), min(ranks.values()), max(ranks.values()))')
        r = subprocess.run([sys.executable, '-c', code, str(saved)], env={**os.environ, 'TIKTOKEN_CACHE_DIR': ''},
                           capture_output=True, text=True)
        assert r.stdout.split() == ['299', '0', '298'], r.stderr
    r = script('train.py', '--dataset=own', *SMALL, '--eval_stride=16', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run = read_log(logs_in(tmp_path)[0])
    assert any(m.text.startswith('data: data/own, source corpus, ') and f'tokenizer {tokenizer} (' in m.text
               and '40 files' in m.text for m in run.messages)
    # bits per byte, from the definition: the loss in bits over all val's windows (eval_stride = block
    # size), over the UTF-8 bytes the targets spell
    meta, ids = dataset(tmp_path, 'own')
    tok = load_tokenizer(str(tmp_path / 'data' / 'own'), meta)
    val = ids['val']
    targets = np.concatenate([val[s + 1:s + 17] for s in range(0, len(val) - 16, 16)])
    spelled = tok.encoding.decode_single_token_bytes if tokenizer != 'char' else lambda t: tok.chars[t].encode()
    nbytes = sum(len(spelled(t)) for t in targets.tolist() if t != tok.separator)
    step = run.steps[-1]
    assert step.metrics['val_bpb'] == pytest.approx(step.val_loss * len(targets) / math.log(2) / nbytes, rel=2e-4)
    assert f"val bpb {step.metrics['val_bpb']:.4f}" in r.stdout
    s = script('sample.py', '--device=cpu', '--start=the', '--num_samples=1', '--max_new_tokens=20', cwd=tmp_path)
    assert s.returncode == 0, s.stderr
    assert s.stdout.startswith('the') and s.stdout.endswith('---------------\n')


def test_a_vocabulary_beyond_uint16_is_stored_as_uint32_trained_and_sampled(tmp_path):
    rare = ''.join(chr(0x10000 + i) for i in range(70_000))  # 70,000 characters beyond the BMP
    write(str(tmp_path / 'big.txt'), (rare + TEXT) * 2)
    r = prepare(tmp_path, 'big.txt', '--dataset=wide', '--tokenizer=char', '--block_size=16')
    assert r.returncode == 0, r.stderr
    meta, ids = dataset(tmp_path, 'wide')
    assert meta['dtype'] == 'uint32' and meta['vocab_size'] > 70_000 and ids['train'].max() >= 1 << 16
    assert os.path.getsize(tmp_path / 'data' / 'wide' / 'train.bin') == 4 * len(ids['train'])
    r = script('train.py', '--dataset=wide', *SMALL, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert read_log(logs_in(tmp_path)[0]).status == 'completed'
    s = script('sample.py', '--device=cpu', f'--start={chr(0x10000 + 69_999)}', '--num_samples=1',
               '--max_new_tokens=10', cwd=tmp_path)
    assert s.returncode == 0, s.stderr
    assert len(s.stdout.split('\n---------------\n')[0]) == 11


def test_one_document_splits_by_position_into_nanogpts_shakespeare_char_files(tmp_path):
    text = TEXT * 40
    write(str(tmp_path / 'play.txt'), text)
    r = prepare(tmp_path, 'play.txt', '--dataset=play', '--tokenizer=char', '--block_size=16')
    assert r.returncode == 0, r.stderr
    assert 'documents: 1, split by position' in r.stdout
    os.makedirs(tmp_path / 'nanogpt')
    write(str(tmp_path / 'nanogpt' / 'input.txt'), text)
    assert script('data/shakespeare_char/prepare.py', '--out_dir=nanogpt', cwd=tmp_path).returncode == 0
    for name in ('train.bin', 'val.bin'):
        assert (tmp_path / 'data' / 'play' / name).read_bytes() == (tmp_path / 'nanogpt' / name).read_bytes()
    ours, _ = dataset(tmp_path, 'play')
    with open(tmp_path / 'nanogpt' / 'meta.pkl', 'rb') as f:
        theirs = pickle.load(f)
    assert (ours['stoi'], ours['itos'], ours['vocab_size']) == (theirs['stoi'], theirs['itos'], theirs['vocab_size'])


def test_adding_files_never_moves_a_document_and_the_output_is_byte_identical_at_any_process_count(tmp_path):
    docs = documents(60)
    write(str(tmp_path / 'one' / 'a.jsonl'), jsonl(docs[:30]))
    r1 = prepare(tmp_path, 'one', '--dataset=before', '--block_size=8', '--num_proc=1')
    r2 = prepare(tmp_path, 'one', '--dataset=again', '--block_size=8', '--num_proc=2')
    assert r1.returncode == r2.returncode == 0, r1.stderr + r2.stderr
    for name in ('train.bin', 'val.bin', 'meta.pkl'):
        assert (tmp_path / 'data' / 'before' / name).read_bytes() == (tmp_path / 'data' / 'again' / name).read_bytes()
    write(str(tmp_path / 'one' / '0.jsonl'), jsonl(docs[30:]))  # sorts first
    assert prepare(tmp_path, 'one', '--dataset=after', '--block_size=8').returncode == 0
    before, after = split_texts(tmp_path, 'before'), split_texts(tmp_path, 'after')
    for split in ('train', 'val'):
        assert set(before[split]) <= set(after[split])
        assert set(after[split]) - set(before[split]) == {d for d in docs[30:] if goes_to_val(d) == (split == 'val')}


def test_an_existing_dataset_is_refused_and_force_replaces_only_what_prepare_wrote(tmp_path):
    write(str(tmp_path / 'a.txt'), TEXT * 10)
    write(str(tmp_path / 'b.txt'), TEXT * 20)
    assert prepare(tmp_path, 'a.txt', '--dataset=d', '--tokenizer=char', '--block_size=8').returncode == 0
    first = (tmp_path / 'data' / 'd' / 'train.bin').read_bytes()
    r = prepare(tmp_path, 'b.txt', '--dataset=d', '--tokenizer=char', '--block_size=8')
    assert_refused(r, 'data/d already exists', '--force', prog='prepare.py')
    assert (tmp_path / 'data' / 'd' / 'train.bin').read_bytes() == first
    r = prepare(tmp_path, 'b.txt', '--dataset=d', '--tokenizer=char', '--block_size=8', '--force')
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / 'data' / 'd' / 'train.bin').read_bytes()) > len(first)
    assert sorted(os.listdir(tmp_path / 'data')) == ['d']
    write(str(tmp_path / 'data' / 'd' / 'notes.txt'), 'mine')
    r = prepare(tmp_path, 'a.txt', '--dataset=d', '--tokenizer=char', '--block_size=8', '--force')
    assert_refused(r, 'data/d holds files prepare.py did not write (notes.txt)', prog='prepare.py')
    assert (tmp_path / 'data' / 'd' / 'notes.txt').read_text() == 'mine'


@pytest.mark.parametrize('signum, status', [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_prepare_leaves_no_dataset_and_no_temporary_folder(tmp_path, signum, status):
    rng = np.random.default_rng(0)
    words = np.array(TEXT.split())
    for i in range(8):  # about 40 MB: GPT-2 BPE takes seconds on one process
        write(str(tmp_path / 'big' / f'{i}.txt'), ' '.join(rng.choice(words, 800_000)))
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, 'data', 'prepare.py'), 'big', '--dataset=big',
                             '--num_proc=1'], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not glob.glob(str(tmp_path / 'data' / '.big.tmp-*' / 'train.bin')) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # encoding
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert err.strip().splitlines() == [f'prepare.py: stopped by {"SIGTERM" if status == 143 else "Ctrl-C"}: '
                                        'nothing was written']
    assert nothing_left(tmp_path, 'big')


def bad_jsonl(corpus):
    write(f'{corpus}/a.jsonl', '{"text": "fine"}\n{"text": broken\n')


def missing_field(corpus):
    write(f'{corpus}/a.jsonl', '{"text": "fine"}\n{"body": "elsewhere"}\n')


def parquet_without_column(corpus):
    parquet(f'{corpus}/p.parquet', ['x', 'y'], key='content')


@pytest.mark.parametrize('make, args, needle', [
    (None, ['missing.txt'], 'missing.txt: no such file or folder'),
    (None, ['corpus/*.jsonl'], 'corpus/*.jsonl: no file matches'),
    (lambda c: os.makedirs(c), ['corpus'], 'no file found in corpus'),
    (lambda c: write(f'{c}/empty.txt', ''), ['corpus'], 'no text in corpus: every file is empty or was skipped'),
    (lambda c: write(f'{c}/x.bin', b'\x00' * 10), ['corpus/x.bin'], 'corpus/x.bin: a binary file'),
    (lambda c: write(f'{c}/x.pdf', b'%PDF-1.4'), ['corpus/x.pdf'], 'corpus/x.pdf: .pdf is a format prepare cannot read'),
    (bad_jsonl, ['corpus'], 'corpus/a.jsonl, line 2: not JSON'),
    (missing_field, ['corpus'], "corpus/a.jsonl, line 2: no field 'text' (choose the field with --text_key)"),
    (parquet_without_column, ['corpus'], "corpus/p.parquet: no column 'text' (it has content, n;"),
    (lambda c: write(f'{c}/a.txt', TEXT), ['corpus', '--tokenizer=bpe', '--vocab_size=100'],
     '--vocab_size must be at least 257'),
    (lambda c: write(f'{c}/a.txt', TEXT), ['corpus', '--vocab_size=1000'], '--vocab_size is for --tokenizer=bpe'),
    (lambda c: write(f'{c}/a.txt', TEXT), ['corpus', '--dataset=../elsewhere'], '--dataset must be a plain folder name'),
    (lambda c: write(f'{c}/a.txt', TEXT), ['corpus', '--val_fraction=1.5'], '--val_fraction must be between 0 and 1'),
    (lambda c: write(f'{c}/a.txt', TEXT), ['corpus', '--tokenizer=words'], "argument --tokenizer: invalid choice: 'words'"),
    (lambda c: write(f'{c}/a.txt', TEXT), ['corpus', '--tokenizer=char'],
     f'val would hold {len(TEXT) - int(len(TEXT) * 0.9)} tokens (its share of the one document), too few for a '
     'block of 1024: raise --val_fraction'),
], ids=['missing', 'no_match', 'no_file', 'empty', 'binary', 'pdf', 'not_json', 'no_field', 'no_column',
        'small_vocab', 'vocab_not_bpe', 'dataset_name', 'val_fraction', 'tokenizer', 'val_too_small'])
def test_bad_input_is_refused_in_one_line_naming_it_and_leaves_nothing(tmp_path, make, args, needle):
    if make:
        make(str(tmp_path / 'corpus'))
    dataset_arg = [] if any(a.startswith('--dataset') for a in args) else ['--dataset=bad']
    r = prepare(tmp_path, *args, *dataset_arg)
    assert_refused(r, needle, prog='prepare.py')
    assert nothing_left(tmp_path, 'bad') and not os.path.exists(tmp_path / 'elsewhere')


def test_text_key_picks_the_field_and_the_column(tmp_path):
    docs = documents(12)
    write(str(tmp_path / 'c' / 'a.jsonl.zst'), jsonl(docs[:6], key='body'))
    parquet(str(tmp_path / 'c' / 'b.parquet'), docs[6:], key='body')
    r = prepare(tmp_path, 'c', '--dataset=k', '--text_key=body', '--tokenizer=char', '--block_size=8',
                '--val_fraction=0.5')
    assert r.returncode == 0, r.stderr
    texts = split_texts(tmp_path, 'k')
    assert sorted(texts['train'] + texts['val']) == sorted(docs)


def test_files_with_a_utf8_byte_order_mark_read_as_without_it(tmp_path):
    docs = documents(8)
    bom = '\ufeff'
    write(str(tmp_path / 'c' / 'a.jsonl'), bom + jsonl(docs[:6]))
    write(str(tmp_path / 'c' / 'b.txt'), bom + docs[6])
    write(str(tmp_path / 'c' / 'c.txt'), bom + docs[7] * 3000)  # read in pieces
    r = prepare(tmp_path, 'c', '--dataset=bom', '--tokenizer=char', '--block_size=8', '--val_fraction=0.5')
    assert r.returncode == 0, r.stderr
    texts = split_texts(tmp_path, 'bom')
    assert sorted(texts['train'] + texts['val']) == sorted(docs[:7] + [docs[7] * 3000])


STOP_A_NEW_WORKER = '''
import multiprocessing, os, signal, sys, time
sys.path.insert(0, os.environ['ROOT'])
from data import prepare
signal.signal(signal.SIGTERM, prepare.on_sigterm)  # as prepare's main sets it, before its workers fork
context = multiprocessing.get_context('fork')
forked = context.Event()  # a signal in the instant of the fork itself is lost: Python clears it
def wait():
    forked.set()
    time.sleep(60)
worker = context.Process(target=wait)
worker.start()
forked.wait(60)
worker.terminate()  # as the pool stops its workers after another's error, maybe before they start
worker.join()
print(worker.exitcode)
'''


def test_a_worker_stopped_before_it_starts_ends_quietly_with_no_traceback(tmp_path):
    r = script('-c', STOP_A_NEW_WORKER, cwd=tmp_path, env={'ROOT': ROOT})
    assert r.returncode == 0 and r.stderr == '', r.stderr
    assert r.stdout.strip() in (str(-signal.SIGTERM), str(128 + signal.SIGTERM))
