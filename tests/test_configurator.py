"""Bad input to train.py, of any key and any kind, is refused in one line with exit status 2, and nothing is written."""
import ast
import os
import re

import pytest
import torch

from conftest import ROOT, TINY, assert_refused, logs_in, script, site_without
from logger import read_log

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')


@pytest.mark.parametrize('args, needles', [
    (['--batchsize=8'], ["unknown config key 'batchsize'", 'did you mean batch_size']),
    (['--max_iters=2.5'], ['max_iters expects int', '2.5']),
    (['--compile=maybe'], ["compile must be 'auto', True or False, got 'maybe'"]),
    (['--dtype=float64'], ["dtype must be 'auto', 'float32', 'bfloat16' or 'float16', got 'float64'"]),
    (['--always_save_checkpoint=maybe'], ['always_save_checkpoint expects bool', "'maybe'"]),
    (['--learning_rate=fast'], ['learning_rate expects float', "'fast'"]),
    (['config/no_such_file.py'], ["config file 'config/no_such_file.py' not found"]),
    (['--max_iters'], ["'--max_iters': expected --key=value"]),
    (['--NAME=x'], ["unknown config key 'NAME'"]),  # checkpoint.py's, imported: not a key
])
def test_bad_command_line_is_refused_in_one_line_without_a_log(workdir, args, needles):
    r = script('train.py', *TINY, *args, cwd=workdir)
    assert_refused(r, *needles)
    assert not (workdir / 'logs').exists() and not (workdir / 'out').exists()


def test_init_from_gpt2_where_transformers_is_not_installed_is_refused_naming_the_install(workdir):
    # requirements.txt installs transformers (for integrations/): a site-packages without it stands in
    r = script('-S', os.path.join(ROOT, 'train.py'), *TINY, '--init_from=gpt2', cwd=workdir,
               env={'PYTHONPATH': site_without(workdir, 'transformers')})
    assert_refused(r, "init_from='gpt2'", 'pip install transformers')
    assert not (workdir / 'logs').exists() and not (workdir / 'out').exists()


# One of each kind of check, through train.py (TINY has n_embd=32, learning_rate=1e-2,
# lr_decay_iters=100); test_check_holds_each_key_to_its_rule below goes through every rule.
@pytest.mark.parametrize('args, needle', [
    (['--batch_size=0'], 'batch_size must be at least 1, got 0'),
    (['--n_head=3'], 'n_embd must be a multiple of n_head, got n_embd=32, n_head=3'),
    (['--gradient_accumulation_steps=0'], 'gradient_accumulation_steps must be at least 1, got 0'),
    (['--max_iters=-5'], 'max_iters must be at least 0'),
    (['--eval_interval=0'], 'eval_interval must be at least 1, got 0'),
    (['--dropout=1.0'], 'dropout must be in [0, 1), got 1.0'),
    (['--learning_rate=-1'], 'learning_rate must be at least 0, got -1.0'),
    (['--learning_rate=1e999'], 'learning_rate must be a finite number, got inf'),
    (['--init_from=gpt3'], "init_from must be 'scratch', 'resume', 'auto' or one of gpt2,"),
    # slow: test_check_holds_each_key_to_its_rule proves its rule (out_dir ' '), the next case an out_dir refused
    pytest.param(['--out_dir='], "out_dir must not be empty, got ''", marks=pytest.mark.slow),
    (['--out_dir=data/tiny/train.bin'], "out_dir 'data/tiny/train.bin' cannot be a directory"),
    (['--device=gpu'], "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu'"),
    pytest.param(['--device=cuda'], "device='cuda', but no CUDA GPU is available here", marks=no_cuda),
    # slow: test_check_holds_each_key_to_its_rule proves its rule ('adam'), [init_from=gpt3] a choice refused
    pytest.param(['--optimizer=sgd'], "optimizer must be 'adamw' or 'muon', got 'sgd'", marks=pytest.mark.slow),
    (['--logit_softcap=-1'], 'logit_softcap must be at least 0 (0 turns the cap off), got -1.0'),
    # slow: test_check_holds_each_key_to_its_rule proves its rule, [n_head=3] a shape refused through train.py
    pytest.param(['--rope=True', '--n_head=32'], 'rope needs an even head size n_embd / n_head', marks=pytest.mark.slow),
])
def test_a_bad_value_of_any_key_is_refused_in_one_line_and_leaves_no_files(workdir, args, needle):
    r = script('train.py', *TINY, *args, cwd=workdir)
    assert_refused(r, needle)
    assert os.listdir(workdir) == ['data']  # no log, no out_dir


# A rule applies where all its keys are present, so each case holds just the keys it needs.
# None: the value is valid (the edge of its range), and check() lets it through.
@pytest.mark.parametrize('config, error', [
    ({'block_size': 0}, 'block_size must be at least 1, got 0'),
    ({'n_layer': -1}, 'n_layer must be at least 0'),
    ({'n_layer': 0}, None),
    ({'n_head': 0, 'n_embd': 32}, 'n_head must be at least 1, got 0'),
    ({'n_embd': 0}, 'n_embd must be at least 1, got 0'),
    ({'vocab_size': 0}, 'vocab_size must be at least 1, got 0'),
    ({'max_iters': 0}, None),
    ({'log_interval': 0}, 'log_interval must be at least 1, got 0'),
    ({'eval_iters': 0}, 'eval_iters must be at least 1, got 0'),
    ({'num_iters': 0}, 'num_iters must be at least 1, got 0'),
    ({'burn_in': -1}, 'burn_in must be at least 0, got -1'),
    ({'burn_in': 0}, None),
    ({'num_samples': 0}, 'num_samples must be at least 1, got 0'),
    ({'max_new_tokens': 0}, 'max_new_tokens must be at least 1, got 0'),
    ({'top_k': 0}, 'top_k must be at least 1, got 0'),
    ({'seed': 2**64}, 'seed must fit in a signed 64-bit integer, got 18446744073709551616'),
    ({'seed': -1}, None),
    ({'dropout': 0.0}, None),
    ({'temperature': 0.0}, 'temperature must be > 0 (use --top_k=1 for greedy decoding), got 0.0'),
    ({'weight_decay': -0.1}, 'weight_decay must be at least 0, got -0.1'),
    ({'weight_decay': 0.0}, None),
    ({'beta1': -0.1}, 'beta1 must be in [0, 1), got -0.1'),
    ({'beta2': 1.0}, 'beta2 must be in [0, 1), got 1.0'),
    ({'beta1': 0.0, 'beta2': 0.0}, None),
    ({'grad_clip': -1.0}, 'grad_clip must be at least 0 (0 turns clipping off), got -1.0'),
    ({'grad_clip': 0.0}, None),
    ({'warmup_iters': -1}, 'warmup_iters must be at least 0, got -1'),
    ({'lr_decay_iters': -1}, 'lr_decay_iters must be at least 0, got -1'),
    ({'min_lr': -1e-4}, 'min_lr must be at least 0, got -0.0001'),
    ({'lr_decay_iters': 0, 'warmup_iters': 0, 'decay_lr': True}, None),  # get_lr: straight to min_lr
    ({'lr_decay_iters': 60, 'warmup_iters': 100, 'decay_lr': True}, None),  # as nanoGPT: warmup throughout
    ({'min_lr': 0.1, 'learning_rate': 0.01, 'decay_lr': True}, None),  # as nanoGPT: the rate rises
    ({'lr_decay_iters': 1, 'warmup_iters': 0, 'decay_lr': True}, None),
    ({'lr_decay_iters': 0, 'warmup_iters': 0, 'decay_lr': False}, None),
    ({'min_lr': 0.0, 'learning_rate': 0.0, 'decay_lr': True}, None),
    ({'block_size': 2048, 'init_from': 'gpt2-xl'}, 'block_size must be at most 1024 with GPT-2 weights'),
    ({'block_size': 2048, 'init_from': 'scratch'}, None),
    ({'init_from': 'gpt2-medium'}, None),
    ({'init_from': 'auto'}, None),
    ({'ddp_timeout': 0}, 'ddp_timeout must be > 0 (seconds), got 0'),
    ({'ddp_timeout': 1}, None),
    ({'out_dir': ' '}, "out_dir must not be empty, got ' '"),
    ({'log_dir': '', 'file_logging': True}, 'log_dir must not be empty when file_logging=True'),
    ({'log_dir': '', 'file_logging': False}, None),
    ({'dataset': ''}, "dataset must name a folder under data/, got ''"),
    ({'wandb_project': '', 'wandb_log': True}, 'wandb_project must not be empty when wandb_log=True'),
    ({'grad_clip': float('nan')}, 'grad_clip must be a finite number, got nan'),
    ({'optimizer': 'adam'}, "optimizer must be 'adamw' or 'muon', got 'adam'"),
    ({'optimizer': 'muon'}, None),
    ({'muon_lr': -0.01}, 'muon_lr must be at least 0, got -0.01'),
    ({'muon_momentum': 1.0}, 'muon_momentum must be in [0, 1), got 1.0'),
    ({'learning_rate': 0.0, 'optimizer': 'muon'}, "learning_rate must be > 0 with optimizer='muon'"),
    ({'learning_rate': 0.0, 'optimizer': 'adamw'}, None),
    ({'mlp': 'swiglu'}, "mlp must be 'gelu' or 'relu2', got 'swiglu'"),
    ({'logit_softcap': 0.0}, None),
    ({'rope': True, 'n_embd': 48, 'n_head': 16}, 'rope needs an even head size n_embd / n_head, got rope=True'),
    ({'rope': False, 'n_embd': 48, 'n_head': 16}, None),
    ({'lr_schedule': 'linear'}, "lr_schedule must be 'cosine' or 'wsd', got 'linear'"),
    ({'warmdown_iters': -1}, 'warmdown_iters must be at least 0, got -1'),
    # a warmdown longer than what follows warmup takes all of it (a shortened config)
    ({'warmdown_iters': 91, 'lr_decay_iters': 100, 'warmup_iters': 10, 'lr_schedule': 'wsd', 'decay_lr': True}, None),
    ({'eval_stride': -4}, 'eval_stride must be at least 0 (0: eval_iters random batches), got -4'),
    ({'init_from': 'gpt2', 'rope': True, 'qk_norm': False, 'mlp': 'gelu', 'tie_weights': True,
      'zero_init': False, 'logit_softcap': 0.0}, "init_from loads GPT-2's architecture"),
    ({'init_from': 'scratch', 'rope': True, 'qk_norm': False, 'mlp': 'gelu', 'tie_weights': True,
      'zero_init': False, 'logit_softcap': 0.0}, None),
])
def test_check_holds_each_key_to_its_rule(config, error, capsys):
    from configurator import check
    if error is None:
        check(config)
        return
    with pytest.raises(SystemExit) as e:
        check(config)
    assert e.value.code == 2
    assert error in capsys.readouterr().err


@pytest.mark.parametrize('args, steps', [
    # no clipping, no warmup, no dropout, no weight decay, decay to zero; a model of no layers (bigram)
    (['--grad_clip=0.0', '--warmup_iters=0', '--dropout=0.0', '--weight_decay=0.0', '--min_lr=0.0',
      '--n_layer=0', '--max_iters=2', '--eval_interval=2'], [0, 2]),
    # without decay the schedule keys mean nothing (config/finetune_shakespeare.py has min_lr > learning_rate)
    (['--decay_lr=False', '--min_lr=1.0', '--warmup_iters=500', '--learning_rate=0', '--max_iters=1'], [0, 1]),
    (['--eval_only=True'], [0]),
    (['--max_iters=0'], [0]),  # evaluates the new model once, as eval_only does
])
def test_edge_values_that_mean_something_keep_working(workdir, args, steps):
    r = script('train.py', *TINY, *args, cwd=workdir)
    assert r.returncode == 0, r.stderr
    run = read_log(logs_in(workdir)[0])
    assert run.status == 'completed' and [s.iter for s in run.steps] == steps


def script_keys(name):
    """{key: default} of a script's config section, read from its source: the assignments above config_keys."""
    with open(os.path.join(ROOT, name)) as f:
        tree = ast.parse(f.read())
    keys = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == 'config_keys':
                return keys
            keys[node.targets[0].id] = node.value.value if isinstance(node.value, ast.Constant) else None
    raise AssertionError(f'{name} has no config_keys line')


def test_every_key_of_every_script_has_a_rule():
    from configurator import RULES
    ruled = {key for keys, _, _ in RULES for key in keys.split()}
    resolved = {'device', 'dtype', 'compile', 'backend'}  # configurator.resolve() checks these
    free = {'wandb_run_name', 'start'}  # any text: a run's name, a prompt (sample.py checks FILE: and '')
    every = {}
    for name in ('train.py', 'sample.py', 'bench.py'):
        every.update(script_keys(name))
    unruled = [k for k, v in every.items() if not isinstance(v, bool) and k not in ruled | resolved | free]
    assert unruled == [], f'add a row to configurator.RULES for {unruled}'
    assert ruled <= every.keys(), f'RULES names keys no script has: {ruled - every.keys()}'


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
                   'python data/prepare.py YOUR_TEXT --dataset=shakespeare_char',
                   'python ' + os.path.join('data', 'shakespeare_char', 'prepare.py'))
    r = script('train.py', *TINY, '--dataset=mine', cwd=workdir)
    assert_refused(r, 'python data/prepare.py YOUR_TEXT --dataset=mine`')
    assert not (workdir / 'logs').exists()


def test_help_lists_every_key_with_its_default_and_exits_0(workdir):
    r = script('train.py', '--help', cwd=workdir)
    assert r.returncode == 0, r.stderr
    for line in ('--batch_size', "= 12", '--learning_rate', '0.0006', "--device", "'auto'", '--log_dir'):
        assert line in r.stdout
    assert not (workdir / 'logs').exists()


def imported(name):
    """The names a script imports."""
    with open(os.path.join(ROOT, name)) as f:
        tree = ast.parse(f.read())
    return {(a.asname or a.name).split('.')[0] for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}


def help_entries(text):
    """{key: (default, meaning)} from --help, a wrapped meaning joined, and the heading lines in order."""
    entries, headings, key = {}, [], None
    for line in text.split('keys, their defaults and what they mean:')[1].splitlines():
        if m := re.match(r'  --(\w+) += (.*?)(?:  +(\S.*))?$', line):
            key = m.group(1)
            entries[key] = (m.group(2).strip(), m.group(3) or '')
        elif line.startswith(' ') and key:
            entries[key] = (entries[key][0], f'{entries[key][1]} {line.strip()}')
        elif line.strip():
            headings.append(line.strip())
            key = None
    return entries, headings


@pytest.mark.parametrize('name', ['train.py', 'sample.py', 'bench.py'])
def test_help_shows_exactly_the_config_blocks_keys_each_with_its_default_and_the_comment_beside_it(workdir, name):
    r = script(name, '--help', cwd=workdir)
    assert r.returncode == 0, r.stderr
    entries, headings = help_entries(r.stdout)
    block = script_keys(name)
    assert list(entries) == list(block)  # the header, --key=value and config files take this set too
    assert not set(entries) & imported(name), 'an imported name became a config key'
    source = open(os.path.join(ROOT, name)).read()
    for key, (default, meaning) in entries.items():
        comment = re.search(rf'^{key} = .*? # (.*)$', source, re.M)
        assert comment, f'{name}: {key} has no comment saying what it means'
        assert meaning == comment.group(1).strip(), key
        if block[key] is not None:
            assert default == repr(block[key])
    if name == 'train.py':
        groups = ['I/O', 'logging', 'data', 'model', 'optimizer', 'schedule', 'parallel', 'system']
        assert [h for h in headings if h in groups] == groups


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


def test_a_config_file_with_a_byte_order_mark_reads_and_one_not_in_utf8_is_refused_in_one_line(tmp_path, capsys):
    from configurator import configure
    (tmp_path / 'bom.py').write_bytes(b'\xef\xbb\xbfn = 3\n')
    assert configure({'n': 1}, [str(tmp_path / 'bom.py')]) == {'n': 3}
    (tmp_path / 'latin1.py').write_bytes("name = 'café'\n".encode('latin-1'))
    with pytest.raises(SystemExit) as stop:
        configure({'name': 'x'}, [str(tmp_path / 'latin1.py')])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and 'latin1.py' in err[0] and 'is not UTF-8' in err[0]
