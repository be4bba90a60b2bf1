"""checkpoint.py in-process: a save cut short at any step leaves an intact checkpoint, and NaN weights
are never written. train.py and sample.py use it end to end in test_faults.py."""
import os
import shutil
import subprocess
import sys

import pytest
import torch

import checkpoint
from conftest import ROOT
from checkpoint import load_checkpoint, write_checkpoint


def state(iter_num, value=1.0):
    return {'model': {'w': torch.full((64, 64), value)}, 'model_args': {}, 'iter_num': iter_num,
            'optimizer': {'state': {0: {'exp_avg': torch.zeros(64, 64)}}}}


# os.replace is called four times by a save that keeps the previous checkpoint: the sums with the new
# file's added, ckpt.pt to ckpt_prev.pt, the new file to ckpt.pt, the sums without the replaced file's
@pytest.mark.parametrize('cut_at', [1, 2, 3, 4, None])
def test_a_save_cut_short_at_any_step_leaves_intact_checkpoints_to_load(tmp_path, monkeypatch, cut_at):
    write_checkpoint(state(1), tmp_path)
    write_checkpoint(state(2), tmp_path)
    calls, replace = [], os.replace
    def cut_short(src, dst):
        calls.append(dst)
        if len(calls) == cut_at:
            raise KeyboardInterrupt  # the process ends here
        replace(src, dst)
    monkeypatch.setattr(checkpoint.os, 'replace', cut_short)
    try:
        write_checkpoint(state(3), tmp_path)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert len(calls) == (cut_at or 4)
    path, ckpt, notes = load_checkpoint(tmp_path)
    assert notes == [] and ckpt['iter_num'] == (3 if cut_at in (4, None) else 2)
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]
    # and the save after it, as a resumed run makes: every checkpoint file matches a sha256 listed
    write_checkpoint(state(4), tmp_path)
    for path in checkpoint.find_checkpoints(tmp_path):
        assert checkpoint.file_sha256(path) in {digest for digest, _ in checkpoint.read_sums(tmp_path)}


@pytest.mark.skipif(shutil.which('sha256sum') is None, reason='no sha256sum here')
def test_the_sums_file_is_what_sha256sum_checks(tmp_path):
    write_checkpoint(state(1), tmp_path)
    write_checkpoint(state(2), tmp_path)
    r = subprocess.run(['sha256sum', '-c', 'ckpt.sha256'], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == 'ckpt.pt: OK\nckpt_prev.pt: OK\n'


def test_a_checkpoint_holding_a_nan_is_never_written(tmp_path):
    write_checkpoint(state(1), tmp_path)
    before = sorted((f, (tmp_path / f).read_bytes()) for f in os.listdir(tmp_path))
    bad = state(2)
    bad['optimizer']['state'][0]['exp_avg'][3, 5] = float('inf')
    with pytest.raises(checkpoint.CheckpointError, match=r"non-finite values in checkpoint\['optimizer'\]"):
        write_checkpoint(bad, tmp_path)
    assert sorted((f, (tmp_path / f).read_bytes()) for f in os.listdir(tmp_path)) == before


def test_export_into_a_missing_folder_is_refused_in_one_line(tmp_path):
    (tmp_path / 'out').mkdir()
    write_checkpoint(state(4), str(tmp_path / 'out'))
    r = subprocess.run([sys.executable, os.path.join(ROOT, 'checkpoint.py'), 'export', 'out', 'missing/m.pt'],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        'checkpoint.py: error: cannot write missing/m.pt: the folder missing does not exist']
    assert not (tmp_path / 'missing').exists()
