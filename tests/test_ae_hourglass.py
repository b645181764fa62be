"""Tests for hgjax.ae_net (the released Associative Embedding network)."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from hgjax.nn.ae_hourglass import AssociativeEmbeddingNet
from hgjax.nn.layers import ConvBlock


def _shapes(model, size):
  images = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  abstract = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), images)
  return traverse_util.flatten_dict(abstract, sep='/')


def test_parameter_count_matches_official_fixture(shared_data):
  info = json.loads((shared_data / 'official_fidelity' / 'ae_nstack1_dim32_inc8.json').read_text())
  model = AssociativeEmbeddingNet(num_stacks=info['nstack'], features=info['inp_dim'],
                                  increase=info['increase'], num_outputs=info['oup_dim'],
                                  batch_norm=info['bn'])
  shapes = _shapes(model, 64)
  assert not any(k.startswith('batch_stats') for k in shapes)
  assert sum(int(np.prod(s.shape)) for s in shapes.values()) == info['n_params_in_state_dict']
  assert info['n_params_in_state_dict'] == 6272186
  assert len(shapes) == info['n_state_tensors']


def test_released_widths_and_inner_increase():
  """Released model: 256, 384, 512, 640, 768; the official code widens the inner levels by
  128 whatever `increase` is, unless inner_increase says otherwise."""
  def low1_widths(model):
    shapes = _shapes(model, 64)
    prefix, widths = 'params/hourglass_0/', []
    while prefix + 'low1/conv/kernel' in shapes:
      widths.append(shapes[prefix + 'low1/conv/kernel'].shape[-1])
      prefix += 'low2/'
    return widths

  released = AssociativeEmbeddingNet(num_stacks=1, features=256, increase=128, num_outputs=34,
                                     batch_norm=False)
  assert low1_widths(released) == [384, 512, 640, 768]
  official = AssociativeEmbeddingNet(num_stacks=1, features=32, increase=8, num_outputs=34,
                                     batch_norm=False)
  assert low1_widths(official) == [40, 168, 296, 424]
  uniform = AssociativeEmbeddingNet(num_stacks=1, features=32, increase=8, num_outputs=34,
                                    batch_norm=False, inner_increase=8)
  assert low1_widths(uniform) == [40, 48, 56, 64]


def test_output_shape_and_batch_norm_placement():
  model = AssociativeEmbeddingNet(num_stacks=2, features=16, increase=4, num_outputs=6,
                                  batch_norm=True, depth=2, dtype=jnp.bfloat16)
  images = jax.ShapeDtypeStruct((2, 32, 48, 3), jnp.float32)
  # Abstract evaluation only: shapes and dtypes without compiling anything.
  variables = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), images)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, images)
  assert out.shape == (2, 2, 8, 12, 6) and out.dtype == jnp.float32
  bns = {k.rsplit('/', 2)[0] for k in traverse_util.flatten_dict(variables['batch_stats'],
                                                                 sep='/')}
  # As in the official code: BN on the stem, on up1/low1 of every level and the innermost low2;
  # never on low3, the two convs after the hourglass, the heads or the merges.
  stem = {f'stem_conv{j}' for j in range(1, 5)}
  hg = {f'hourglass_{i}/{p}{m}' for i in range(2) for p in ('', 'low2/') for m in ('up1', 'low1')}
  inner = {f'hourglass_{i}/low2/low2' for i in range(2)}
  assert bns == stem | hg | inner


def test_conv_block_applies_relu_before_batch_norm():
  """The official Conv is conv -> ReLU -> BN. With an identity conv and BN that subtracts 1,
  the output is relu(x) - 1 (BN first would give relu(x - 1))."""
  block = ConvBlock(1, kernel_size=3, batch_norm=True)
  x = jnp.array([-2.0, -0.5, 0.5, 3.0]).reshape(1, 2, 2, 1)
  kernel = np.zeros((3, 3, 1, 1), np.float32)
  kernel[1, 1] = 1.0
  variables = {
      'params': {'conv': {'kernel': kernel, 'bias': np.zeros(1, np.float32)},
                 'bn': {'scale': np.ones(1, np.float32), 'bias': np.zeros(1, np.float32)}},
      'batch_stats': {'bn': {'mean': np.ones(1, np.float32),
                             'var': np.full(1, 1 - 1e-5, np.float32)}},
  }
  y = np.asarray(block.apply(variables, x, train=False)).ravel()
  np.testing.assert_allclose(y, [-1.0, -1.0, -0.5, 2.0], atol=1e-6)


def test_parameter_gradients_equal_lax_convolution_gradients(monkeypatch):
  """The AE convs (7x7 stride-2 stem and 3x3, with BatchNorm) take hgjax.nn.layers' matmul
  kernel gradient; the whole network's parameter gradients equal those of plain lax convs."""
  from jax import lax

  from hgjax.nn import layers
  model = AssociativeEmbeddingNet(num_stacks=2, features=8, increase=4, inner_increase=4,
                                  num_outputs=6, batch_norm=True, depth=1, stem_features=8)
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 16, 3))
  # Random values in the parameters' shapes (compiling model.init takes ~30 s on the CPU).
  rng = np.random.default_rng(0)
  shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.PRNGKey(0), x)
  variables = jax.tree.map(
      lambda s: jnp.asarray(rng.normal(0.0, 0.3, s.shape), jnp.float32), shapes)

  def grads():
    def loss(params):
      out, _ = model.apply({**variables, 'params': params}, x, train=True,
                           mutable=['batch_stats'])
      return jnp.sum(out ** 2 * jnp.arange(out.shape[-1]))
    return jax.jit(jax.grad(loss))(variables['params'])

  fast = grads()
  monkeypatch.setattr(layers, 'conv_general_dilated', lax.conv_general_dilated)
  plain = grads()
  flat_fast = traverse_util.flatten_dict(fast, sep='/')
  flat_plain = traverse_util.flatten_dict(plain, sep='/')
  assert flat_fast.keys() == flat_plain.keys()
  for k in flat_fast:
    # Float32 summation order differs: tolerance relative to the tensor's largest gradient.
    scale = float(np.max(np.abs(flat_plain[k])))
    np.testing.assert_allclose(flat_fast[k], flat_plain[k], rtol=1e-4, atol=1e-5 * scale,
                               err_msg=k)
