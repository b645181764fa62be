"""Preemption and resume: SIGTERM saves and exits 0, the resumed run is bit-identical to an
uninterrupted one, kill -9 during checkpoint writes leaves a usable checkpoint, and
metrics.jsonl keeps one row per logged step."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hgjax import metric_writer

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _cmd(workdir, *overrides):
  return [sys.executable, '-m', 'hgjax.main', '--config', 'experiments/tiny.py',
          '--workdir', str(workdir), *overrides]


def _run(workdir, *overrides):
  proc = subprocess.run(_cmd(workdir, *overrides), cwd=REPO, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def _losses(workdir):
  rows = metric_writer.read_metrics(workdir)
  return {r['step']: r['train/loss'] for r in rows if 'train/loss' in r}


def _final_params(workdir):
  """Parameters of the last checkpoint as a flat dict of numpy arrays."""
  import jax

  from experiments import tiny
  from hgjax import checkpoints
  from hgjax import methods
  from hgjax import train
  config = tiny.get_config()
  model = methods.method_for(config).build_model(config)
  abstract = jax.eval_shape(lambda: train.create_state(config, model, jax.random.key(0)))
  mngr = checkpoints.manager(workdir, 3)
  state = checkpoints.restore(mngr, mngr.latest_step(), abstract)
  flat = jax.tree_util.tree_flatten_with_path(jax.device_get(state.params))[0]
  return {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat}


def _wait_for_step(workdir, step, proc, timeout=300):
  path = Path(workdir) / 'metrics.jsonl'
  t0 = time.time()
  while time.time() - t0 < timeout:
    if proc.poll() is not None:
      raise AssertionError(f'run ended early: {proc.stderr.read()[-2000:]}')
    if path.exists() and any(json.loads(line)['step'] >= step
                             for line in path.read_text().splitlines() if line.strip()):
      return
    time.sleep(0.05)
  raise AssertionError(f'step {step} not reached')


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('uninterrupted')
  _run(workdir)
  return workdir


def test_sigterm_then_resume_is_bit_identical(reference, tmp_path):
  proc = subprocess.Popen(_cmd(tmp_path), cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  _wait_for_step(tmp_path, 5, proc)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-2000:]
  assert 'preempted: saved checkpoint at step' in out
  stopped = max(_losses(tmp_path))
  assert stopped < 12
  proc = _run(tmp_path)
  assert f'resumed from {tmp_path}/checkpoints/{stopped}' in proc.stdout
  ref, got = _losses(reference), _losses(tmp_path)
  assert sorted(got) == sorted(ref) == list(range(1, 13))   # one row per step, no duplicates
  for step in ref:
    assert got[step] == ref[step], step                      # bit-identical, not approximate
  ref_params, got_params = _final_params(reference), _final_params(tmp_path)
  assert ref_params.keys() == got_params.keys()
  for k in ref_params:
    np.testing.assert_array_equal(got_params[k], ref_params[k], err_msg=k)


def test_kill_9_during_checkpoint_writes_then_resume(reference, tmp_path):
  # Saving every step keeps the run inside a checkpoint write most of the time.
  proc = subprocess.Popen(_cmd(tmp_path, '--config.train.checkpoint_every=1'), cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  _wait_for_step(tmp_path, 6, proc)
  time.sleep(0.3)
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  _run(tmp_path, '--config.train.checkpoint_every=1')
  ref, got = _losses(reference), _losses(tmp_path)
  assert sorted(got) == list(range(1, 13))
  for step in ref:
    assert got[step] == ref[step], step
