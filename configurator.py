"""
Command-line configuration shared by train.py, sample.py and bench.py.

A script keeps its config as plain module globals and hands them here:

    config = configure({k: globals()[k] for k in config_keys}, sys.argv[1:], __doc__)
    globals().update(config)

Arguments are applied in order:
    config/some_file.py  exec'd Python; each name it assigns must be a known key
    --key=value          a Python literal, or a bare string where the key holds a string

A value must have its default's type: an int where a float is expected is fine, a float where
an int is expected is not; a default of None takes any literal; a default of 'auto' (device,
dtype, compile, backend) also takes True/False. Any mistake exits with status 2 and one line
naming what was wrong, before any work starts, so a run that never began leaves no log.
"""
import ast
import difflib
import os
import sys
import types

import torch


class ConfigError(Exception):
    pass


def die(message):
    """The one way a script refuses bad input: one line on stderr, exit status 2."""
    if os.environ.get('RANK', '0') == '0':  # under torchrun every rank refuses; one says why
        print(f'{os.path.basename(sys.argv[0]) or "python"}: error: {message}', file=sys.stderr)
    sys.exit(2)


def configure(config, argv, doc=''):
    defaults = dict(config)  # types come from the defaults, not from earlier arguments
    try:
        for arg in argv:
            if arg in ('-h', '--help'):
                print_help(defaults, doc)
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


def print_help(config, doc):
    print((doc or '').strip() + '\n')
    print(f'usage: python {os.path.basename(sys.argv[0])} [config/file.py ...] [--key=value ...]\n')
    print('keys and their defaults:')
    width = max(map(len, config), default=0)
    for key, value in config.items():
        print(f'  --{key:<{width}} = {value!r}')


def _apply_file(path, config, defaults):
    if not os.path.isfile(path):
        raise ConfigError(f'config file {path!r} not found')
    namespace = dict(config)
    try:
        with open(path, encoding='utf-8') as f:
            exec(compile(f.read(), path, 'exec'), namespace)
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


def resolve(device, dtype, compile, backend='auto', local_rank=None):
    """Turn the 'auto' system settings into what this machine can do; explicit values win."""
    if device == 'auto':
        if torch.cuda.is_available():
            device = 'cuda'
        elif getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available():
            device = 'mps'
        else:
            device = 'cpu'
    if device == 'cuda' and local_rank is not None:
        device = f'cuda:{local_rank}'  # one GPU per process under torchrun
    device_type = 'cuda' if 'cuda' in device else device.split(':')[0]
    if dtype == 'auto':
        if device_type == 'cuda':
            dtype = 'bfloat16' if torch.cuda.is_bf16_supported() else 'float16'
        else:
            dtype = 'float32'
    if dtype not in ('float32', 'bfloat16', 'float16'):
        die(f"dtype must be 'auto', 'float32', 'bfloat16' or 'float16', got {dtype!r}")
    if compile == 'auto':
        compile = device_type == 'cuda'
    if not isinstance(compile, bool):
        die(f"compile must be 'auto', True or False, got {compile!r}")
    if backend == 'auto':
        backend = 'nccl' if device_type == 'cuda' else 'gloo'
    return device, device_type, dtype, compile, backend
