"""
Command-line configuration shared by train.py, sample.py and bench.py.

A script keeps its config as plain module globals, assigned between two dashed comment lines
(its config block), each with a comment saying what it means, and hands them here:

    config_keys = config_block(__file__)  # the names the block assigns: nothing imported is a key
    config = configure({k: globals()[k] for k in config_keys}, sys.argv[1:], __doc__, config_keys)
    globals().update(config)

Arguments are applied in order:
    config/some_file.py  exec'd Python; each name it assigns must be a known key
    --key=value          a Python literal, or a bare string where the key holds a string

A value must have its default's type: an int where a float is expected is fine, a float where
an int is expected is not; a default of None takes any literal; a default of 'auto' (device,
dtype, compile, backend) also takes True/False. Then check() holds each value to its rule in
RULES below, and resolve() turns 'auto' into what this machine has and refuses a device it has
not. Any mistake exits with status 2 and one line naming what was wrong, before any work
starts, so a run that never began leaves no log.
"""
import ast
import difflib
import io
import math
import os
import re
import sys
import textwrap
import tokenize
import types

import torch
import torch.distributed as dist


class ConfigError(Exception):
    pass


def die(message):
    """The one way a script refuses bad input: one line on stderr, exit status 2."""
    if os.environ.get('RANK', '0') == '0':  # under torchrun every rank refuses; one says why
        print(f'{os.path.basename(sys.argv[0]) or "python"}: error: {message}', file=sys.stderr)
    sys.exit(2)


def config_block(path):
    """{key: (headings, meaning)} of the script at path, in order: every name its config block (the
    lines between its first two dashed comment lines) assigns, the comment beside it (what it
    means), and the comment lines just above it (the group it opens, or []). Only what the block
    assigns is a key: names the script imports or defines elsewhere never are."""
    with open(path, encoding='utf-8') as f:
        source = f.read()
    dashes = [n for n, line in enumerate(source.splitlines(), 1) if line.startswith('# ---')]
    first, last = dashes[0], dashes[1]
    comments = {}  # line number: the comment on it, and whether it stands alone on its line
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and first < token.start[0] < last:
            alone = not token.line[:token.start[1]].strip()
            comments[token.start[0]] = (token.string.lstrip('#').strip(), alone)
    assigned = {node.lineno: node for node in ast.parse(source).body
                if isinstance(node, ast.Assign) and first < node.lineno < last}
    keys, headings = {}, []
    for n in range(first + 1, last):
        if n in comments and comments[n][1]:
            headings.append(comments[n][0])
        elif n in assigned:
            node = assigned[n]
            meaning = comments.get(node.end_lineno, ('', True))[0]
            for target in node.targets:
                keys[target.id] = (headings, meaning)
            headings = []
    return keys


def configure(config, argv, doc='', about=None):
    """config ({key: default}) with argv's config files and --key=value applied in order. about
    ({key: (headings, meaning)}, from config_block) is what --help says of each key."""
    defaults = dict(config)  # types come from the defaults, not from earlier arguments
    try:
        for arg in argv:
            if arg in ('-h', '--help'):
                print_help(defaults, doc, about or {})
                sys.exit(0)
            if arg.startswith('--'):
                key, eq, text = arg[2:].partition('=')
                if not eq:
                    raise ConfigError(f'{arg!r}: expected --key=value')
                _check_key(key, config)
                config[key] = _typed(key, _literal(text, defaults[key]), defaults[key])
            else:
                _apply_file(arg, config, defaults)
    except ConfigError as e:
        die(e)
    return config


def print_help(config, doc, about):
    """The script's docstring, then every key with its default and meaning, grouped as its config block."""
    print((doc or '').strip() + '\n')
    print(f'usage: python {os.path.basename(sys.argv[0])} [config/file.py ...] [--key=value ...]\n')
    print('keys, their defaults and what they mean:')
    width = max(map(len, config), default=0)
    shown = min(max((len(repr(v)) for v in config.values()), default=0), 12)  # a longer default pushes its line
    for key, value in config.items():
        headings, meaning = about.get(key, ([], ''))
        for heading in headings:
            print(f'\n{heading}')
        line = f'  --{key:<{width}} = {value!r:<{shown}}'
        indent = ' ' * min(len(line) + 2, width + shown + 9)
        print(textwrap.fill(meaning, 110, initial_indent=line + '  ', subsequent_indent=indent, break_on_hyphens=False)
              if meaning else line)


def _apply_file(path, config, defaults):
    if not os.path.isfile(path):
        raise ConfigError(f'config file {path!r} not found')
    namespace = dict(config)
    try:
        with open(path, encoding='utf-8-sig') as f:  # -sig: a byte order mark is no code
            exec(compile(f.read(), path, 'exec'), namespace)
    except UnicodeDecodeError as e:
        raise ConfigError(f'config file {path!r} is not UTF-8 ({e.reason} at byte {e.start}): save it as UTF-8') from None
    except SyntaxError as e:
        raise ConfigError(f'config file {path!r}, line {e.lineno}: {e.msg}') from None
    except Exception as e:
        raise ConfigError(f'config file {path!r} raised {type(e).__name__}: {e}') from None
    for key, value in namespace.items():
        # helpers a config file may use (imports, functions, _private names) are not config
        if key.startswith('_') or isinstance(value, (types.ModuleType, types.FunctionType, type)):
            continue
        _check_key(key, config, where=f'config file {path!r}: ')
        config[key] = _typed(key, value, defaults[key])


def _check_key(key, config, where=''):
    if key not in config:
        close = difflib.get_close_matches(key, list(config), n=3, cutoff=0.6)
        hint = f' (did you mean {", ".join(close)}?)' if close else ' (--help lists every key)'
        raise ConfigError(f'{where}unknown config key {key!r}{hint}')


def _literal(text, default):
    if isinstance(default, str) and default != 'auto':
        return text  # a string key takes the text as it is: --out_dir=out-1, --start=a=b
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text  # a bare word; _typed refuses it where a number or a bool is expected


def _typed(key, value, default):
    expected = type(default).__name__
    if default is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif default == 'auto':
        ok, expected = isinstance(value, (str, bool)), 'str or bool'
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f'{key} expects {expected}, got {value!r}')
    return value


GPT2_MODELS = ('gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl')  # what GPT.from_pretrained loads

# The valid values of every key of train.py, sample.py and bench.py (a key means the same in each).
# A row is (keys, test, rule): test gets the keys' values and says whether they are fine; the error
# is the first key, the rule and the values. A row applies to a script that has all its keys. Rows
# run in order, so a row may rely on the rows above it (n_head is at least 1 before n_embd % n_head).
# Types are already checked; bools need no row; device, dtype, compile and backend are resolve()'s.
RULES = [
    # sizes and counts
    ('batch_size', lambda n: n >= 1, 'must be at least 1'),
    ('block_size', lambda n: n >= 1, 'must be at least 1'),
    ('n_layer', lambda n: n >= 0, 'must be at least 0 (0 layers is a bigram model)'),
    ('n_head', lambda n: n >= 1, 'must be at least 1'),
    ('n_embd', lambda n: n >= 1, 'must be at least 1'),
    ('n_embd n_head', lambda e, h: e % h == 0, 'must be a multiple of n_head'),
    ('vocab_size', lambda n: n >= 1, 'must be at least 1'),
    ('gradient_accumulation_steps', lambda n: n >= 1, 'must be at least 1'),
    ('max_iters', lambda n: n >= 0, 'must be at least 0 (0 evaluates the model once and stops)'),
    ('eval_interval', lambda n: n >= 1, 'must be at least 1'),
    ('log_interval', lambda n: n >= 1, 'must be at least 1'),
    ('eval_iters', lambda n: n >= 1, 'must be at least 1'),
    ('num_iters', lambda n: n >= 1, 'must be at least 1'),
    ('burn_in', lambda n: n >= 0, 'must be at least 0'),
    ('num_samples', lambda n: n >= 1, 'must be at least 1'),
    ('max_new_tokens', lambda n: n >= 1, 'must be at least 1'),
    ('top_k', lambda n: n >= 1, 'must be at least 1'),
    ('seed', lambda n: -2**63 <= n < 2**63, 'must fit in a signed 64-bit integer'),
    # probabilities, rates and the optimizer
    ('dropout', lambda p: 0 <= p < 1, 'must be in [0, 1)'),
    ('temperature', lambda t: t > 0, 'must be > 0 (use --top_k=1 for greedy decoding)'),
    ('learning_rate', lambda x: x >= 0, 'must be at least 0'),
    ('weight_decay', lambda x: x >= 0, 'must be at least 0'),
    ('beta1', lambda b: 0 <= b < 1, 'must be in [0, 1)'),
    ('beta2', lambda b: 0 <= b < 1, 'must be in [0, 1)'),
    ('grad_clip', lambda x: x >= 0, 'must be at least 0 (0 turns clipping off)'),
    # the learning-rate schedule: any order of warmup_iters and lr_decay_iters runs as nanoGPT's
    # does (get_lr defines the equal case), and a min_lr above learning_rate makes the rate rise
    ('warmup_iters', lambda n: n >= 0, 'must be at least 0'),
    ('lr_decay_iters', lambda n: n >= 0, 'must be at least 0'),
    ('min_lr', lambda x: x >= 0, 'must be at least 0'),
    # the newer recipe (model.py's options, Muon, the wsd schedule, strided evaluation)
    ('optimizer', lambda s: s in ('adamw', 'muon'), "must be 'adamw' or 'muon'"),
    ('muon_lr', lambda x: x >= 0, 'must be at least 0'),
    ('muon_momentum', lambda b: 0 <= b < 1, 'must be in [0, 1)'),
    ('learning_rate optimizer', lambda lr, opt: lr > 0 or opt != 'muon',
     "must be > 0 with optimizer='muon', whose muon_lr follows learning_rate's schedule"),
    ('mlp', lambda s: s in ('gelu', 'relu2'), "must be 'gelu' or 'relu2'"),
    ('logit_softcap', lambda x: x >= 0, 'must be at least 0 (0 turns the cap off)'),
    ('rope n_embd n_head', lambda on, e, h: not on or (e // h) % 2 == 0,
     'needs an even head size n_embd / n_head'),
    ('lr_schedule', lambda s: s in ('cosine', 'wsd'), "must be 'cosine' or 'wsd'"),
    ('warmdown_iters', lambda n: n >= 0, 'must be at least 0'),
    ('eval_stride', lambda n: n >= 0, 'must be at least 0 (0: eval_iters random batches)'),
    # distributed training
    ('ddp_timeout', lambda t: t > 0, 'must be > 0 (seconds)'),
    ('parallel', lambda s: s in ('ddp', 'fsdp'), "must be 'ddp' or 'fsdp'"),
    # names and paths
    ('init_from', lambda s: s in ('scratch', 'resume', 'auto') + GPT2_MODELS,
     f"must be 'scratch', 'resume', 'auto' or one of {', '.join(GPT2_MODELS)}"),
    ('block_size init_from', lambda b, i: b <= 1024 or i not in GPT2_MODELS,
     'must be at most 1024 with GPT-2 weights'),
    ('init_from rope qk_norm mlp tie_weights zero_init logit_softcap',
     lambda i, *arch: i not in GPT2_MODELS or arch == (False, False, 'gelu', True, False, 0.0),
     "loads GPT-2's architecture: leave rope, qk_norm, mlp, tie_weights, zero_init and logit_softcap "
     'at their defaults'),
    ('out_dir', lambda s: s.strip() != '', 'must not be empty'),
    ('log_dir file_logging', lambda s, on: s.strip() != '' or not on, 'must not be empty when file_logging=True'),
    ('dataset', lambda s: s.strip() != '', 'must name a folder under data/'),
    ('wandb_project wandb_log', lambda s, on: s.strip() != '' or not on, 'must not be empty when wandb_log=True'),
]


def check(config, rules=RULES):
    """Refuse the first value that breaks its rule, in one line naming the key(s) and value(s)."""
    for key, value in config.items():
        if isinstance(value, float) and not math.isfinite(value):  # 1e999 parses as inf
            die(f'{key} must be a finite number, got {value!r}')
    for keys, test, rule in rules:
        keys = keys.split()
        if all(k in config for k in keys) and not test(*(config[k] for k in keys)):
            got = repr(config[keys[0]]) if len(keys) == 1 else ', '.join(f'{k}={config[k]!r}' for k in keys)
            die(f'{keys[0]} {rule}, got {got}')


def resolve(device, dtype, compile, backend='auto', local_rank=None):
    """Turn the 'auto' system settings into what this machine can do; explicit values win, but
    only if this machine has them. local_rank is given under torchrun, where backend matters."""
    if device == 'auto':
        if torch.cuda.is_available():
            device = 'cuda'
        elif getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available():
            device = 'mps'
        else:
            device = 'cpu'
    if not isinstance(device, str) or not re.fullmatch(r'cpu|mps|cuda(:\d+)?', device):
        die(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    if device == 'cuda' and local_rank is not None:
        device = f'cuda:{local_rank}'  # one GPU per process under torchrun
    device_type = device.split(':')[0]
    if device_type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(':')[2] or 0)
        if count == 0:
            build = ' (this torch is built without CUDA)' if torch.version.cuda is None else ''
            die(f'device={device!r}, but no CUDA GPU is available here{build}: use --device=cpu')
        if index >= count:
            die(f'device={device!r}, but this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}'
                + ('; start at most that many processes per node' if local_rank is not None else ''))
    if device_type == 'mps' and not (getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available()):
        die("device='mps', but MPS is not available here: use --device=cpu")
    if dtype == 'auto':
        if device_type == 'cuda':
            dtype = 'bfloat16' if torch.cuda.is_bf16_supported() else 'float16'
        else:
            dtype = 'float32'
    if dtype not in ('float32', 'bfloat16', 'float16'):
        die(f"dtype must be 'auto', 'float32', 'bfloat16' or 'float16', got {dtype!r}")
    if dtype == 'bfloat16' and device_type == 'cuda' and not torch.cuda.is_bf16_supported():
        die(f"dtype='bfloat16' is not supported on {device}: use --dtype=float16")
    if compile == 'auto':
        compile = device_type == 'cuda'
    if not isinstance(compile, bool):
        die(f"compile must be 'auto', True or False, got {compile!r}")
    if backend == 'auto':
        backend = 'nccl' if device_type == 'cuda' else 'gloo'
    if local_rank is not None:  # outside torchrun no process group is made: backend is unused
        if not isinstance(backend, str) or not dist.is_backend_available(backend):
            die(f"backend={backend!r} is not available in this torch; 'gloo' works everywhere, 'nccl' on CUDA")
        if backend.lower() == 'nccl' and device_type != 'cuda':
            die(f"backend='nccl' needs CUDA, but device={device!r}: use --backend=gloo")
    return device, device_type, dtype, compile, backend
