"""Configs load; overrides of unknown keys, wrong types and invalid values fail clearly."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from hgjax import config_check

REPO = Path(__file__).resolve().parents[1]
# Every experiment file (hgjax/defaults.py itself is experiments/mpii.py).
EXPERIMENTS = sorted(p.stem for p in (REPO / 'experiments').glob('*.py') if p.stem != '__init__')


@pytest.mark.parametrize('name', EXPERIMENTS)
def test_every_experiment_loads_and_is_valid(name):
  config = importlib.import_module(f'experiments.{name}').get_config()
  assert config_check.problems(config, device_count=1) == []


def test_paper_settings():
  from experiments import mpii
  from experiments import mpii_2stack
  c = mpii.get_config()
  assert (c.model.num_stacks, c.model.features, c.dataset.image_size) == (8, 256, 256)
  assert (c.optimizer.name, c.optimizer.learning_rate) == ('rmsprop', 2.5e-4)
  assert mpii_2stack.get_config().model.num_stacks == 2


def test_invalid_values_are_listed_together_with_valid_choices():
  from experiments import synthetic
  c = synthetic.get_config()
  c.model.num_stacks = 0
  c.targets.sigma = -1.0
  c.optimizer.name = 'adagrad'
  c.dataset.name = 'imagenet'
  c.train.batch_size = 6
  c.optimizer.pace = 'budget'
  c.train.max_minutes = 0.0
  found = '\n'.join(config_check.problems(c, device_count=4))
  assert 'config.model.num_stacks=0 must be > 0' in found
  assert 'config.targets.sigma=-1.0 must be > 0' in found
  assert "config.optimizer.name='adagrad' is not one of 'rmsprop', 'adam', 'adamw', 'sgd'" in found
  assert "config.dataset.name='imagenet' is not one of 'mpii', 'coco', 'synthetic'" in found
  assert 'config.train.batch_size=6 is not divisible by the 4 devices' in found
  assert "config.optimizer.pace='budget' needs config.train.max_minutes > 0, got 0.0" in found
  with pytest.raises(ValueError, match='invalid config'):
    config_check.validate(c, device_count=4)


def _main(*args):
  return subprocess.run([sys.executable, '-m', 'hgjax.main', '--config', 'experiments/tiny.py',
                         '--workdir', '/nonexistent/never_written', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def test_unknown_key_and_wrong_type_fail_before_any_work():
  proc = _main('--config.train.nums_steps=3')
  assert proc.returncode != 0
  assert 'nums_steps' in proc.stderr and 'num_steps' in proc.stderr   # suggests the real key
  proc = _main('--config.train.batch_size=four')
  assert proc.returncode != 0 and 'batch_size' in proc.stderr
  proc = _main('--config.optimizer.name=adagrad')
  assert proc.returncode != 0
  assert "config.optimizer.name='adagrad' is not one of" in proc.stderr
  assert not Path('/nonexistent/never_written').exists()


def test_mpii_without_built_data_says_what_to_do(tmp_path):
  proc = subprocess.run([sys.executable, '-m', 'hgjax.main', '--config', 'experiments/mpii.py',
                         '--workdir', str(tmp_path / 'w'),
                         f'--config.dataset.data_dir={tmp_path / "nodata"}'], cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0
  assert 'python -m hgjax.datasets.build mpii' in proc.stderr
