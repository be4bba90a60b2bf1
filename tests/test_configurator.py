"""Bad input to train.py is refused in one line with exit status 2, and no log is written."""
import importlib.util
import os

import pytest

from conftest import TINY, logs_in, script
from logger import read_log


def assert_refused(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr  # one line: no traceback, no AssertionError
    assert lines[0].startswith('train.py: error: ')
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize('args, needles', [
    (['--batchsize=8'], ["unknown config key 'batchsize'", 'did you mean batch_size']),
    (['--max_iters=2.5'], ['max_iters expects int', '2.5']),
    (['--compile=maybe'], ["compile must be 'auto', True or False, got 'maybe'"]),
    (['--dtype=float64'], ["dtype must be 'auto', 'float32', 'bfloat16' or 'float16', got 'float64'"]),
    (['--always_save_checkpoint=maybe'], ['always_save_checkpoint expects bool', "'maybe'"]),
    (['--learning_rate=fast'], ['learning_rate expects float', "'fast'"]),
    (['config/no_such_file.py'], ["config file 'config/no_such_file.py' not found"]),
    (['--max_iters'], ["'--max_iters': expected --key=value"]),
    pytest.param(['--init_from=gpt2'], ["init_from='gpt2'", 'pip install transformers'],
                 marks=pytest.mark.skipif(importlib.util.find_spec('transformers') is not None,
                                          reason='transformers is installed here')),
])
def test_bad_command_line_is_refused_in_one_line_without_a_log(workdir, args, needles):
    r = script('train.py', *TINY, *args, cwd=workdir)
    assert_refused(r, *needles)
    assert not (workdir / 'logs').exists() and not (workdir / 'out').exists()


def test_unknown_key_in_a_config_file_is_refused_with_suggestions(workdir):
    (workdir / 'my_config.py').write_text('import math\nlearning_rat = math.sqrt(1e-6)\nn_layer = 2\n')
    r = script('train.py', 'my_config.py', *TINY, cwd=workdir)
    assert_refused(r, "my_config.py", "unknown config key 'learning_rat'", 'learning_rate')
    assert not (workdir / 'logs').exists()


def test_a_config_file_value_of_the_wrong_type_is_refused(workdir):
    (workdir / 'my_config.py').write_text('batch_size = 12.0\n')
    r = script('train.py', *TINY, 'my_config.py', cwd=workdir)
    assert_refused(r, 'batch_size expects int', '12.0')


def test_missing_data_says_which_command_prepares_it(workdir):
    r = script('train.py', *TINY, '--dataset=shakespeare_char', cwd=workdir)
    assert_refused(r, os.path.join('data', 'shakespeare_char', 'train.bin'),
                   'python ' + os.path.join('data', 'shakespeare_char', 'prepare.py'))
    assert not (workdir / 'logs').exists()


def test_help_lists_every_key_with_its_default_and_exits_0(workdir):
    r = script('train.py', '--help', cwd=workdir)
    assert r.returncode == 0, r.stderr
    for line in ('--batch_size', "= 12", '--learning_rate', '0.0006', "--device", "'auto'", '--log_dir'):
        assert line in r.stdout
    assert not (workdir / 'logs').exists()


def test_config_files_and_overrides_apply_in_order_and_land_in_the_log(workdir):
    (workdir / 'my_config.py').write_text('max_iters = 3\nlearning_rate = 1\nwandb_run_name = "from file"\n')
    r = script('train.py', *TINY, 'my_config.py', '--wandb_run_name=a=b c', '--eval_interval=3',
               '--min_lr=0', cwd=workdir)
    assert r.returncode == 0, r.stderr
    run = read_log(logs_in(workdir)[0])
    # an int where a float is expected is a float; a value may contain '='
    assert run.config['learning_rate'] == 1.0 and isinstance(run.config['learning_rate'], float)
    assert run.config['min_lr'] == 0.0 and isinstance(run.config['min_lr'], float)
    assert run.config['wandb_run_name'] == 'a=b c'
    assert run.config['max_iters'] == 3 and run.status == 'completed'


def test_a_default_of_none_accepts_any_literal(monkeypatch):
    from configurator import configure
    config = configure({'anything': None, 'n': 1}, ['--anything=(1, 2)', '--n=3'])
    assert config == {'anything': (1, 2), 'n': 3}
    assert configure({'anything': None}, ['--anything=word'])['anything'] == 'word'
