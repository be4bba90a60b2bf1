"""
The tokenizers a dataset can have. data/prepare.py makes one and saves it with the dataset;
train.py, sample.py and bench.py load it back with load_tokenizer(data_dir, meta).

- char: one token per character of the corpus, the ids in sorted order (nanoGPT's shakespeare_char)
- gpt2: GPT-2's BPE, built offline by data/bpe.py
- bpe: a byte-level BPE trained on the corpus by rustbpe, with GPT-4's pre-tokenizer pattern. It is
  saved as tokenizer.tiktoken, tiktoken's own format (each token in base64 and its id, a line
  each), and encodes through tiktoken

Each has encode(text) -> numpy ids, decode(ids) -> text, token_bytes() -> each id's length in UTF-8
bytes (0 for the separator) for bits per byte, vocab_size, and separator: the id that goes between
documents (None for a char vocabulary of one document, as nanoGPT's shakespeare_char).
"""
import base64
import os

import numpy as np

SEPARATOR = '<|endoftext|>'
BPE_FILE = 'tokenizer.tiktoken'


def token_dtype(vocab_size):
    return 'uint16' if vocab_size <= 1 << 16 else 'uint32'


class CharTokenizer:
    name = 'char'

    def __init__(self, chars, separator):
        self.chars = list(chars)
        self.separator = len(self.chars) if separator else None
        self.vocab_size = len(self.chars) + bool(separator)
        self.ids = np.full(0x110000, -1, dtype=np.int64)  # code point -> id, by one lookup for a whole text
        self.ids[[ord(c) for c in self.chars]] = np.arange(len(self.chars))

    def encode(self, text, special=False):
        """special: the separator written out in the text is the separator (a prompt's), not characters."""
        if special and self.separator is not None and SEPARATOR in text:
            parts = [self.encode(part) for part in text.split(SEPARATOR)]
            return np.concatenate([np.append(p, self.separator) for p in parts[:-1]] + parts[-1:])
        ids = self.ids[code_points(text)]
        if (ids < 0).any():
            unknown = sorted({c for c in text if self.ids[ord(c)] < 0})
            raise ValueError(repr(''.join(unknown)))  # the characters the vocabulary lacks
        return ids

    def decode(self, ids):
        return ''.join(SEPARATOR if i == self.separator else self.chars[i] for i in ids)

    def token_bytes(self):
        return np.array([len(c.encode('utf-8', 'surrogatepass')) for c in self.chars] + [0] * bool(self.separator))

    def meta(self):
        """nanoGPT's keys, so that its sample.py decodes this dataset too."""
        itos = dict(enumerate(self.chars))
        if self.separator is not None:
            itos[self.separator] = SEPARATOR
        return {'itos': itos, 'stoi': {c: i for i, c in enumerate(self.chars)}, 'separator': self.separator}


def code_points(text):
    """The text's characters as numbers (a lone surrogate from JSON's \\ud800 is one too)."""
    return np.frombuffer(text.encode('utf-32-le', 'surrogatepass'), dtype=np.uint32)


class TiktokenTokenizer:
    """GPT-2's BPE, or one trained on the corpus (ranks and pattern given): a tiktoken Encoding either way."""

    def __init__(self, name, encoding, ranks=None, pattern=None):
        self.name, self.encoding, self.ranks, self.pattern = name, encoding, ranks, pattern
        self.vocab_size = encoding.n_vocab
        self.separator = encoding.eot_token

    def encode(self, text, special=False):
        """special: the separator written out in the text is the separator (a prompt's); else it is
        text, as encode_ordinary has it. Straight to numpy, with no list in between."""
        allowed = 'all' if special else set()
        try:
            return self.encoding.encode_to_numpy(text, allowed_special=allowed, disallowed_special=())
        except UnicodeEncodeError:  # lone surrogates, which tiktoken's encode_ordinary mends the same way
            text = text.encode('utf-16', 'surrogatepass').decode('utf-16', 'replace')
            return self.encoding.encode_to_numpy(text, allowed_special=allowed, disallowed_special=())

    def decode(self, ids):
        return self.encoding.decode(list(map(int, ids)), errors='replace')

    def token_bytes(self):
        special = {self.encoding.encode_single_token(s) for s in self.encoding.special_tokens_set}
        return np.array([0 if i in special else len(self.encoding.decode_single_token_bytes(i))
                         for i in range(self.vocab_size)])

    def meta(self):
        if self.name == 'gpt2':
            return {'separator': self.separator}
        return {'separator': self.separator, 'tokenizer_file': BPE_FILE, 'bpe_pattern': self.pattern}

    def save(self, folder):
        """tokenizer.tiktoken: the mergeable tokens in base64 with their ids, as tiktoken.load reads them."""
        with open(os.path.join(folder, BPE_FILE), 'w', encoding='ascii') as f:
            f.writelines(f'{base64.b64encode(token).decode()} {rank}\n' for token, rank in self.ranks.items())


def tiktoken_bpe(ranks, pattern):
    import tiktoken
    encoding = tiktoken.Encoding('bpe', pat_str=pattern, mergeable_ranks=ranks, special_tokens={SEPARATOR: len(ranks)})
    return TiktokenTokenizer('bpe', encoding, ranks, pattern)


def train_bpe(texts, vocab_size):
    """A BPE of vocab_size ids (the separator included) trained on the texts (an iterator); fewer
    where the texts have nothing left to merge."""
    import rustbpe
    trainer = rustbpe.Tokenizer()
    trainer.train_from_iterator(texts, vocab_size - 1)
    return tiktoken_bpe(dict(trainer.get_mergeable_ranks()), trainer.get_pattern())


def load_tokenizer(data_dir, meta):
    """The tokenizer of the dataset in data_dir from its meta.pkl's dict (None without one: nanoGPT's
    openwebtext and shakespeare have none, and are GPT-2's)."""
    meta = meta or {}
    if 'stoi' in meta:  # ours or nanoGPT's char vocabulary
        itos = meta['itos']
        separator = meta.get('separator')
        return CharTokenizer([itos[i] for i in range(len(meta['stoi']))], separator is not None)
    if meta.get('tokenizer') == 'bpe':
        path = os.path.join(data_dir, meta.get('tokenizer_file', BPE_FILE))
        with open(path, encoding='ascii') as f:
            ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in f if line.strip())}
        return tiktoken_bpe(ranks, meta['bpe_pattern'])
    from data.bpe import gpt2_encoding
    return TiktokenTokenizer('gpt2', gpt2_encoding())
