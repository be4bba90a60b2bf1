"""
Prepare OpenWebText (an open reproduction of GPT-2's WebText) as GPT-2 BPE tokens, as nanoGPT
does: download it with Hugging Face `datasets`, split off 0.05% as val, tokenize every document
with an <|endoftext|> after it, and write train.bin (~9B tokens, ~17GB) and val.bin (~4M tokens,
~8.5MB) as uint16 into this directory, or into --out_dir.

Needs `pip install datasets`, a network connection, and about 54GB in Hugging Face's cache.
If the dataset is already cached, HF_DATASETS_OFFLINE=1 skips the network check.

    python data/openwebtext/prepare.py [--out_dir=DIR] [--num_proc=N]
"""
import argparse
import os
import socket
import sys

import numpy as np

# run as a script, Python puts only this file's directory on sys.path; the repo root makes
# data.bpe and the Shakespeare script's atomic_file importable
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from data.bpe import gpt2_encoding  # noqa: E402
from data.shakespeare_char.prepare import atomic_file  # noqa: E402


def write_tokens(texts, path, enc, num_threads=1, batch_size=1024):
    """Tokenize each text of `texts` (any iterable of str) with `enc`, put <|endoftext|> after
    each, and write all the ids as uint16 to `path`. Returns the number of tokens written.
    The file appears complete or not at all."""
    eot = enc.eot_token
    if enc.max_token_value >= 2**16:
        raise ValueError(f"{enc.name}'s ids go up to {enc.max_token_value}, more than uint16 holds")
    n_docs, n_tokens = 0, 0
    with atomic_file(path) as f:
        batch = []
        for text in texts:
            batch.append(text)
            if len(batch) == batch_size:
                n_tokens += _write_batch(f, batch, enc, eot, num_threads)
                n_docs += len(batch)
                batch = []
                if n_docs % (batch_size * 1000) == 0:
                    print(f"{path}: {n_docs:,} documents, {n_tokens:,} tokens so far")
        if batch:
            n_tokens += _write_batch(f, batch, enc, eot, num_threads)
    return n_tokens


def _write_batch(f, batch, enc, eot, num_threads):
    # tiktoken encodes a batch on several threads at once, which is what makes 8M documents
    # take hours rather than a day
    ids = []
    for doc_ids in enc.encode_ordinary_batch(batch, num_threads=num_threads):
        ids.extend(doc_ids)
        ids.append(eot)
    # appending raw uint16 is the same file a np.memmap of the full length would give, without
    # having to know that length before tokenizing
    np.array(ids, dtype=np.uint16).tofile(f)
    return len(ids)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Prepare OpenWebText as GPT-2 BPE tokens.")
    parser.add_argument("--out_dir", default=os.path.dirname(os.path.abspath(__file__)),
                        help="where train.bin and val.bin go")
    # number of workers in .map() call and threads for tokenizing;
    # a good number to use is ~order number of cpu cores // 2
    parser.add_argument("--num_proc", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = parser.parse_args()

    try:
        from datasets import load_dataset
    except ImportError:
        print("error: OpenWebText is downloaded with Hugging Face datasets, which is not "
              "installed: pip install datasets", file=sys.stderr)
        sys.exit(2)

    try:
        enc = gpt2_encoding()
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)

    # fail in seconds, not after a long hang in load_dataset, when there is no network;
    # a dataset that is already cached can be used offline with HF_DATASETS_OFFLINE=1
    offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
    if not offline:
        try:
            socket.create_connection(("huggingface.co", 443), timeout=10).close()
        except OSError as e:
            print(f"error: cannot reach huggingface.co to download OpenWebText ({e}); check "
                  f"the network, or set HF_DATASETS_OFFLINE=1 if it is already cached", file=sys.stderr)
            sys.exit(1)

    os.makedirs(args.out_dir, exist_ok=True)
    # takes 54GB in huggingface .cache dir, about 8M documents (8,013,769)
    try:
        dataset = load_dataset("openwebtext", num_proc=args.num_proc)
    except OSError as e:
        # ConnectionError and the hub's "not in the cache, and offline" errors are OSErrors;
        # anything else is a bug worth its traceback
        print(f"error: could not load OpenWebText from the Hugging Face Hub: {e}", file=sys.stderr)
        sys.exit(1)

    # owt by default only contains the 'train' split, so create a test split
    split_dataset = dataset["train"].train_test_split(test_size=0.0005, seed=2357, shuffle=True)
    split_dataset["val"] = split_dataset.pop("test")  # rename the test split to val

    # this results in:
    # >>> split_dataset
    # DatasetDict({
    #     train: Dataset({
    #         features: ['text'],
    #         num_rows: 8009762
    #     })
    #     val: Dataset({
    #         features: ['text'],
    #         num_rows: 4007
    #     })
    # })

    for split, dset in split_dataset.items():
        path = os.path.join(args.out_dir, f"{split}.bin")
        print(f"writing {path} from {len(dset):,} documents")
        n_tokens = write_tokens((row["text"] for row in dset), path, enc, num_threads=args.num_proc)
        print(f"{path}: {n_tokens:,} tokens")

    # train.bin is ~17GB, val.bin ~8.5MB
    # train has ~9B tokens (9,035,582,198)
    # val has ~4M tokens (4,434,897)

    # to read the bin files later, e.g. with numpy:
    # m = np.memmap('train.bin', dtype=np.uint16, mode='r')
