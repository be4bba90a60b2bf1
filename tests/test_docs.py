"""README.md and docs/*.md point at things that exist: links, anchors, scripts, and the keys their commands pass."""
import glob
import os
import re
import shlex

import pytest

from conftest import ROOT
from test_configurator import script_keys

PAGES = ['README.md'] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, 'docs', '*.md')))
KEYED = ('train.py', 'sample.py', 'bench.py')  # the scripts whose --key=value are config keys


def read(page):
    with open(os.path.join(ROOT, page), encoding='utf-8') as f:
        return f.read()


def split_page(text):
    """(prose lines, code blocks): fenced blocks apart from the text around them."""
    prose, blocks, block = [], [], None
    for line in text.splitlines():
        if line.lstrip().startswith('```'):
            if block is None:
                block = []
            else:
                blocks.append('\n'.join(block))
                block = None
        elif block is None:
            prose.append(line)
        else:
            block.append(line)
    return prose, blocks


def slug(heading):
    """GitHub's anchor for a heading: the text as shown, lower-case, spaces to '-', punctuation other than '-' and '_' dropped."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # a link shows its text
    text = text.replace('`', '').replace('*', '').strip().lower()
    return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


def anchors(text):
    """The anchors of a page's headings; a repeated heading's get -1, -2, ..."""
    seen, found = {}, set()
    for line in split_page(text)[0]:
        if m := re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line):
            base = slug(m.group(1))
            found.add(f'{base}-{seen[base]}' if base in seen else base)
            seen[base] = seen.get(base, 0) + 1
    return found


def links(text):
    """(target, line) of every Markdown link and image in a page's prose, outside code spans."""
    for line in split_page(text)[0]:
        for target in re.findall(r'\]\(([^)\s]+)(?:\s+"[^"]*")?\)', re.sub(r'`[^`]*`', '', line)):
            yield target, line.strip()


def commands(text):
    """Every command line a page shows: each line of its code blocks, and each inline code span."""
    prose, blocks = split_page(text)
    for block in blocks:
        yield from block.replace('\\\n', ' ').splitlines()
    for line in prose:
        yield from re.findall(r'`([^`]+)`', line)


def invocations(line):
    """(script, arguments) for each `python X.py`, `bash scripts/X` and `torchrun ... X.py` in a command line."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:  # not a shell line (an unclosed quote, say)
        return
    segments = [[]]
    for word in words:
        if word in ('&&', '||', '|', ';', '>'):
            segments.append([])
        else:
            segments[-1].append(word)
    for words in segments:
        if words and words[0] == 'torchrun':
            script = next((i for i, word in enumerate(words) if word.endswith('.py')), None)
            if script is not None:
                yield words[script], words[script + 1:]
            continue
        for i, word in enumerate(words[:-1]):
            if (word in ('python', 'python3') and words[i + 1].endswith('.py')
                    or word == 'bash' and words[i + 1].startswith('scripts/')):
                yield words[i + 1], words[i + 2:]


def problems(page, text=None):
    """Every broken link, anchor, script and key in a page (its text read from disk unless given), one line each."""
    text = read(page) if text is None else text
    found = []
    for target, line in links(text):
        if re.match(r'[a-z]+:', target):  # https:, mailto: and the like
            continue
        path, _, anchor = target.partition('#')
        linked = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        if path and not os.path.exists(os.path.join(ROOT, linked)):
            found.append(f'{page}: link to {target}: no file {linked}: {line}')
        elif anchor and linked.endswith('.md') and anchor not in anchors(read(linked) if path else text):
            found.append(f'{page}: link to {target}: no heading #{anchor} in {linked}: {line}')
    for line in commands(text):
        for name, args in invocations(line):
            if not os.path.isfile(os.path.join(ROOT, name)):
                found.append(f'{page}: {name} does not exist: {line}')
            elif os.path.basename(name) in KEYED:
                keys = script_keys(name)
                for arg in args:
                    if arg.startswith('--') and arg != '--help' and arg[2:].partition('=')[0] not in keys:
                        found.append(f'{page}: {name} has no key {arg[2:].partition("=")[0]!r}: {line}')
                    elif arg.endswith('.py') and not arg.startswith('[') and not os.path.isfile(os.path.join(ROOT, arg)):
                        found.append(f'{page}: config file {arg} does not exist: {line}')
    return found


@pytest.mark.parametrize('page', PAGES)
def test_every_link_anchor_script_and_key_a_page_names_exists(page):
    found = problems(page)
    assert not found, '\n'.join(found)


def test_readme_fits_on_a_few_screens():
    lines = len(read('README.md').splitlines())
    assert lines <= 200, f'README.md has {lines} lines: move the detail to a page in docs/'


def test_every_page_in_docs_is_linked_from_the_readme():
    linked = {os.path.normpath(target.partition('#')[0]) for target, _ in links(read('README.md'))}
    assert [page for page in PAGES[1:] if page not in linked] == [], 'add them to the README\'s map of docs/'


# The checks can fail: each kind of mistake, planted in a page of docs/, is reported.

def test_slugs_follow_github_rules():
    assert slug("Time to nanoGPT's loss") == 'time-to-nanogpts-loss'
    assert slug('Hangs: ddp_timeout') == 'hangs-ddp_timeout'
    assert slug('Training throughput: `bench.py`') == 'training-throughput-benchpy'
    assert slug('See [Data](data.md) first') == 'see-data-first'


def test_a_repeated_heading_gets_numbered_anchors():
    text = '# Notes\n\n## Setup\n\n## Setup\n\n```sh\n# not a heading\n```\n[second](#setup-1) [third](#setup-2)\n'
    assert anchors(text) == {'notes', 'setup', 'setup-1'}
    assert problems('docs/planted.md', text) == [
        'docs/planted.md: link to #setup-2: no heading #setup-2 in docs/planted.md: [second](#setup-1) [third](#setup-2)']


@pytest.mark.parametrize('text, problem', [
    ('See [training](trainin.md).', 'no file docs/trainin.md'),
    ('See [the recipe](training.md#the-fastest-recipe).', 'no heading #the-fastest-recipe in docs/training.md'),
    ('![curves](docs/loss_curves.svg)', 'no file docs/docs/loss_curves.svg'),
    ('[start](../README.md#quickstart)', 'no heading #quickstart in README.md'),
    ('```sh\npython train.py --max_iter=10\n```', "train.py has no key 'max_iter'"),
    ('```sh\ntorchrun --standalone --nproc_per_node=2 train.py --batchsize=12\n```', "train.py has no key 'batchsize'"),
    ('Run `python sample.py --num_sample=2`.', "sample.py has no key 'num_sample'"),
    ('```sh\npython bench.py \\\n  --out_dir=x   # bench.py saves nothing\n```', "bench.py has no key 'out_dir'"),
    ('```sh\npython train.py config/train_shakespeare.py\n```', 'config file config/train_shakespeare.py does not exist'),
    ('```sh\npip install -r requirements.txt && python data/own/prepare.py notes/\n```', 'data/own/prepare.py does not exist'),
    ('```sh\nbash scripts/gpu_checks.sh\n```', 'scripts/gpu_checks.sh does not exist'),
])
def test_a_broken_link_anchor_script_or_key_is_reported(text, problem):
    found = problems('docs/planted.md', text + '\n')
    assert len(found) == 1 and problem in found[0], found


def test_commands_and_links_that_exist_pass():
    text = ('```sh\npip install -r requirements.txt && python train.py config/train_shakespeare_char_cpu.py '
            '--n_layer=6 --init_from=resume   # a comment --not_a_key\n'
            'python sample.py --help\npython runs.py --sort best_val logs/ | head\n```\n'
            '[up](../README.md#quick-start) [web](https://github.com/karpathy/nanoGPT) ![](loss_curves.svg)\n')
    assert problems('docs/planted.md', text) == []
