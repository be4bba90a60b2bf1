"""
A prepared dataset as train.py, sample.py and bench.py read it back: data/NAME/ holds train.bin and
val.bin (token ids, one after another) and meta.pkl (a dict saying how to read them).

meta.pkl is read as plain data only: a pickle can carry code that runs while it loads, and a
dataset folder is the kind of thing people download or share. nanoGPT's meta.pkl files (vocab_size,
itos, stoi) are plain data and load as before.

    meta = read_meta('data/shakespeare_char/meta.pkl')   # raises DatasetError, one line
"""
import pickle


class DatasetError(Exception):
    """A dataset file that cannot be used; the message is one line naming it."""


class _Refused(pickle.UnpicklingError):
    pass


class _PlainData(pickle.Unpickler):
    """An unpickler for dicts, lists, tuples, sets, strings, bytes, numbers, bools and None: pickle
    builds those from its own opcodes, and anything else (a class, a function to call) goes through
    find_class, which refuses it before it is imported, let alone run."""

    def find_class(self, module, name):
        raise _Refused(f'{module}.{name}')


def read_meta(path):
    """The dict in a meta.pkl, which must be plain data and hold an int vocab_size."""
    try:
        with open(path, 'rb') as f:
            meta = _PlainData(f).load()
    except _Refused as e:
        raise DatasetError(f'{path} is refused: it holds {e}, which loading would import and run; '
                           'a meta.pkl may hold only plain data (dicts, lists, strings, numbers)') from None
    except (OSError, EOFError, ValueError, TypeError, IndexError, KeyError, pickle.UnpicklingError) as e:
        raise DatasetError(f'{path} cannot be read: {e or type(e).__name__}') from None
    if not isinstance(meta, dict) or not isinstance(meta.get('vocab_size'), int):
        raise DatasetError(f'{path} is not a dataset meta.pkl: it has no vocab_size')
    return meta
