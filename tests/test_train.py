"""train_step: lowers the loss, skips non-finite updates, runs sharded over a mesh."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import synthetic as synthetic_config
from hgjax import methods
from hgjax import train
from hgjax.datasets import synthetic


def tiny_config():
  c = synthetic_config.get_config()
  c.dataset.image_size = 64
  c.model.num_stacks = 2
  c.model.features = 16
  c.model.stem_features = 16
  c.model.depth = 2
  c.train.batch_size = 4
  c.optimizer.schedule = 'constant'
  c.optimizer.warmup_steps = 0
  c.optimizer.learning_rate = 1e-3
  return c


def fixed_batch(config):
  exs = [synthetic.person_example(0, 'train', i, config.dataset.image_size)
         for i in range(config.train.batch_size)]
  return {'image': np.stack([e['image'] for e in exs]),
          'keypoints': np.stack([e['keypoints'][None] for e in exs]).astype(np.float32)}


@pytest.fixture(scope='module')
def setup():
  config = tiny_config()
  mesh = train.make_mesh()
  model = methods.method_for(config).build_model(config)
  step = train.jit_train_step(config, mesh)
  batch = train.global_batch(fixed_batch(config), mesh)
  return config, model, step, batch


def test_train_step_lowers_the_loss_on_a_fixed_batch(setup):
  config, model, step, batch = setup
  state = train.create_state(config, model, jax.random.key(0))
  losses = []
  for _ in range(8):
    state, metrics = step(state, batch)
    losses.append(float(metrics['train/loss']))
  assert losses[-1] < 0.8 * losses[0]
  assert int(state.step) == 8 and int(state.nonfinite_count) == 0
  m = jax.device_get(metrics)
  assert m['train/loss'] == pytest.approx(m['train/loss_stack0'] + m['train/loss_stack1'])
  for key in ('train/grad_norm', 'train/param_norm', 'train/update_norm', 'train/lr'):
    assert np.isfinite(m[key]) and m[key] > 0


def test_nonfinite_update_is_skipped_and_counted(setup):
  config, model, step, batch = setup
  state = train.create_state(config, model, jax.random.key(0))
  state, _ = step(state, batch)
  poisoned = jax.tree.map(lambda x: x, state.params)
  poisoned['head_0']['bias'] = poisoned['head_0']['bias'].at[0].set(jnp.nan)
  state = state.replace(params=poisoned)
  before = jax.device_get(state.params['head_1']['kernel'])
  state, metrics = step(state, batch)
  assert not np.isfinite(float(metrics['train/loss']))
  assert int(state.nonfinite_count) == 1 and int(state.first_nonfinite_step) == 1
  np.testing.assert_array_equal(jax.device_get(state.params['head_1']['kernel']), before)


def test_step_schedule_warmup_and_decay():
  c = tiny_config()
  c.optimizer.schedule = 'step'
  c.optimizer.warmup_steps = 10
  c.optimizer.decay_steps = (100, 200)
  c.optimizer.decay_factor = 0.1
  lr = train.make_schedule(c)
  assert float(lr(0)) == 0.0
  assert float(lr(5)) == pytest.approx(0.5e-3)
  assert float(lr(50)) == pytest.approx(1e-3)
  assert float(lr(150)) == pytest.approx(1e-4)
  assert float(lr(250)) == pytest.approx(1e-5)


def test_budget_pace_reaches_the_schedule_end_with_the_budget():
  c = tiny_config()
  c.optimizer.pace = 'budget'
  c.train.num_steps = 1000
  c.train.max_minutes = 10.0
  # Steps ahead of the clock: the step count decides; the clock ahead: it decides.
  assert train.schedule_step(300, 60.0, c) == 300
  assert train.schedule_step(300, 300.0, c) == 500
  assert train.schedule_step(300, 600.0, c) == 1000
  assert train.schedule_step(300, 900.0, c) == 1000
  c.optimizer.schedule = 'cosine'
  lr = train.make_schedule(c)
  assert float(lr(train.schedule_step(300, 300.0, c))) == pytest.approx(0.5e-3, rel=1e-6)
  assert float(lr(train.schedule_step(300, 600.0, c))) == pytest.approx(0.0, abs=1e-12)


def test_budget_pace_step_equals_the_optimisers_own_learning_rate(setup):
  """Adam with unit learning rate and updates scaled by lr in the step == optax.adam(lr)."""
  _, model, _, batch = setup
  config, paced = tiny_config(), tiny_config()
  paced.optimizer.name = config.optimizer.name = 'adam'
  paced.optimizer.pace = 'budget'
  paced.train.max_minutes = 1.0
  mesh = train.make_mesh()
  own = train.create_state(config, model, jax.random.key(0))
  own_step = train.jit_train_step(config, mesh)
  ext = train.create_state(paced, model, jax.random.key(0))
  ext_step = train.jit_train_step(paced, mesh)
  for _ in range(3):
    own, m_own = own_step(own, batch)
    ext, m_ext = ext_step(ext, batch, np.float32(config.optimizer.learning_rate))
  assert float(m_ext['train/lr']) == pytest.approx(float(m_own['train/lr']))
  for a, b in zip(jax.tree.leaves(own.params), jax.tree.leaves(ext.params), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  # lr 0: nothing moves.
  before = jax.device_get(ext.params)
  ext, _ = ext_step(ext, batch, np.float32(0.0))
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(ext.params), strict=True):
    np.testing.assert_array_equal(a, b)
