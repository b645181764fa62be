"""Stacked Hourglass: parameter counts of the paper network and output shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgjax.nn import hourglass
from hgjax.nn import layers


def _num_params(model, size):
  variables = jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, 3)), train=False))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables['params']))


@pytest.mark.parametrize('stacks,expected', [(8, 25_434_112), (2, 6_570_400), (1, 3_426_448)])
def test_parameter_counts_equal_the_paper_network(stacks, expected):
  # Counts of the official PyTorch network without its unused skip convolutions and without
  # BatchNorm running statistics.
  assert _num_params(hourglass.StackedHourglass(num_stacks=stacks), 256) == expected


def test_output_shapes_per_stack_and_batch_stats():
  model = hourglass.StackedHourglass(num_stacks=3, features=32, num_outputs=5, depth=2)
  x = jax.random.uniform(jax.random.key(1), (2, 64, 96, 3))
  variables = model.init(jax.random.key(0), x, train=False)
  out, updates = model.apply(variables, x, train=True, mutable=['batch_stats'])
  assert out.shape == (2, 3, 16, 24, 5)
  assert out.dtype == jnp.float32
  # Each stack predicts something different (merge layers feed back).
  assert not np.allclose(out[:, 0], out[:, 1])
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), variables['batch_stats'],
                         updates['batch_stats'])
  assert all(jax.tree.leaves(changed))


def test_pool_and_upsample_match_reference_ops():
  x = jax.random.normal(jax.random.key(2), (2, 8, 6, 3))
  pooled = layers.max_pool_2x2(x)
  ref = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), 'VALID')
  np.testing.assert_array_equal(pooled, ref)
  up = layers.upsample_2x(x)
  np.testing.assert_array_equal(up, jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2))


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  model = hourglass.StackedHourglass(num_stacks=1, features=16, num_outputs=4, depth=1,
                                     dtype=jnp.bfloat16)
  x = jnp.ones((1, 16, 16, 3))
  variables = model.init(jax.random.key(0), x, train=False)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables['params']))
  assert model.apply(variables, x, train=False).dtype == jnp.float32
