"""Tests for hgjax.convert (official PyTorch checkpoints -> hgjax)."""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from hgjax import convert
from hgjax.nn.ae_hourglass import AssociativeEmbeddingNet
from hgjax.nn.hourglass import StackedHourglass

FIXTURES = ['shg_nstack2_dim64', 'ae_nstack1_dim32_inc8']


def _load_fixture(shared_data, name):
  path = shared_data / 'official_fidelity' / f'{name}.npz'
  info = json.loads(path.with_suffix('.json').read_text())
  with np.load(path) as z:
    sd = {k[len('state_dict/'):]: z[k] for k in z.files if k.startswith('state_dict/')}
    return path, info, sd, z['input_nhwc'], z['output_nschw']


def _rel_err(out, ref):
  return float(np.abs(out - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize('name', FIXTURES)
def test_fixture_reproduces_official_output(shared_data, name):
  _, info, sd, images, ref = _load_fixture(shared_data, name)
  arch = convert.infer_architecture(sd)
  assert arch['kind'] == name[:name.index('_')]
  assert (arch['num_stacks'], arch['features'], arch['num_outputs']) == (
      info['nstack'], info['inp_dim'], info['oup_dim'])
  assert arch['increase'] == info['increase'] and arch['batch_norm'] == info['bn']
  assert arch['depth'] == 4
  out = convert.run_official(sd, images)
  assert out.shape == ref.shape and out.dtype == np.float32
  assert _rel_err(out, ref) <= 1e-4


def test_error_names_missing_unexpected_and_misshapen_tensors(shared_data):
  _, _, sd, _, _ = _load_fixture(shared_data, 'shg_nstack2_dim64')
  sd = dict(sd)
  del sd['hgs.1.0.low2.up1.bn2.running_var']
  sd['hgs.0.0.low2.up1.conv2.conv.weight'] = np.zeros((32, 32, 1, 1), np.float32)
  sd['outs.0.extra.weight'] = np.zeros(3, np.float32)
  with pytest.raises(ValueError) as info:
    convert.convert_state_dict(sd)
  message = str(info.value)
  assert 'missing tensors (1): hgs.1.0.low2.up1.bn2.running_var' in message
  assert 'unexpected tensors (1): outs.0.extra.weight' in message
  assert ('misshapen tensors (1): hgs.0.0.low2.up1.conv2.conv.weight: '
          'expected (32, 32, 3, 3), got (32, 32, 1, 1)') in message


def test_missing_tensor_needed_for_inference_is_named(shared_data):
  _, _, sd, _, _ = _load_fixture(shared_data, 'ae_nstack1_dim32_inc8')
  sd = {k: v for k, v in sd.items() if k != 'pre.4.conv.weight'}
  with pytest.raises(ValueError, match=r"missing tensor 'pre\.4\.conv\.weight'"):
    convert.convert_state_dict(sd)


def _random_variables(model, size, seed):
  """Variables of `model` with every leaf (BatchNorm statistics too) random in [0.5, 1.5]
  (built from the abstract shapes: eager `model.init` compiles one initialiser per shape)."""
  images = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  abstract = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), images)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda x: rng.uniform(0.5, 1.5, x.shape).astype(np.float32), abstract)


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_stacked_hourglass_of_another_shape():
  model = StackedHourglass(num_stacks=3, features=32, num_outputs=5, depth=3)
  variables = _random_variables(model, 32, seed=1)
  sd = convert.to_official_state_dict(variables)
  # As the official module: unused skip convs and num_batches_tracked are present.
  assert sd['hgs.2.0.low2.low2.low3.skip_layer.conv.weight'].shape == (32, 32, 1, 1)
  assert 'pre.1.skip_layer.conv.weight' in sd and 'pre.0.bn.num_batches_tracked' in sd
  assert sd['merge_preds.1.conv.conv.weight'].shape == (32, 5, 1, 1)
  assert convert.infer_architecture(sd) == {
      'kind': 'shg', 'num_stacks': 3, 'features': 32, 'num_outputs': 5, 'depth': 3,
      'increase': 0, 'inner_increase': 0, 'batch_norm': True, 'stem_features': 128}
  wrapped = {f'model.module.{k}': v for k, v in sd.items()}  # DataParallel in a trainer
  converted_model, converted = convert.convert_state_dict(wrapped)
  assert converted_model == model
  _assert_trees_equal(converted, variables)


def test_round_trip_ae_with_batch_norm():
  model = AssociativeEmbeddingNet(num_stacks=2, features=16, increase=4, num_outputs=6,
                                  batch_norm=True, depth=2, inner_increase=12,
                                  stem_features=32)
  variables = _random_variables(model, 16, seed=2)
  sd = convert.to_official_state_dict(variables)
  assert convert.infer_architecture(sd) == {
      'kind': 'ae', 'num_stacks': 2, 'features': 16, 'num_outputs': 6, 'depth': 2,
      'increase': 4, 'inner_increase': 12, 'batch_norm': True, 'stem_features': 32}
  converted_model, converted = convert.convert_state_dict(sd)
  assert converted_model == model
  _assert_trees_equal(converted, variables)


# An independent NCHW numpy statement of the official pose-ae-train forward pass, reading the
# official tensor names directly (BatchNorm placement as in the official code).


def _np_conv(sd, name, x, stride=1, relu=True, bn=False):
  w, b = sd[f'{name}.conv.weight'].astype(np.float64), sd[f'{name}.conv.bias']
  k = w.shape[-1]
  p = (k - 1) // 2
  xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
  win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
  y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
  y = y + b[None, :, None, None]
  if relu:
    y = np.maximum(y, 0)
  if bn:
    stat = [sd[f'{name}.bn.{s}'][None, :, None, None]
            for s in ('weight', 'bias', 'running_mean', 'running_var')]
    y = (y - stat[2]) / np.sqrt(stat[3] + 1e-5) * stat[0] + stat[1]
  return y


def _np_pool(x):
  b, c, h, w = x.shape
  return x.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _np_hourglass(sd, prefix, x, bn):
  up1 = _np_conv(sd, prefix + 'up1', x, bn=bn)
  low = _np_conv(sd, prefix + 'low1', _np_pool(x), bn=bn)
  if f'{prefix}low2.up1.conv.weight' in sd:
    low = _np_hourglass(sd, prefix + 'low2.', low, bn)
  else:
    low = _np_conv(sd, prefix + 'low2', low, bn=bn)
  low = _np_conv(sd, prefix + 'low3', low)
  return up1 + low.repeat(2, axis=2).repeat(2, axis=3)


def _np_official_ae(sd, images_nhwc, num_stacks, bn):
  x = images_nhwc.transpose(0, 3, 1, 2).astype(np.float64)
  x = _np_conv(sd, 'pre.0', x, stride=2, bn=bn)
  x = _np_pool(_np_conv(sd, 'pre.1', x, bn=bn))
  x = _np_conv(sd, 'pre.4', _np_conv(sd, 'pre.3', x, bn=bn), bn=bn)
  preds = []
  for i in range(num_stacks):
    feature = _np_hourglass(sd, f'features.{i}.0.', x, bn)
    feature = _np_conv(sd, f'features.{i}.2', _np_conv(sd, f'features.{i}.1', feature))
    preds.append(_np_conv(sd, f'outs.{i}', feature, relu=False))
    if i < num_stacks - 1:
      x = (x + _np_conv(sd, f'merge_preds.{i}.conv', preds[-1], relu=False)
           + _np_conv(sd, f'merge_features.{i}.conv', feature, relu=False))
  return np.stack(preds, axis=1)


def test_ae_with_batch_norm_and_two_stacks_matches_numpy_official_statement():
  model = AssociativeEmbeddingNet(num_stacks=2, features=8, increase=4, num_outputs=6,
                                  batch_norm=True, depth=2)
  variables = _random_variables(model, 16, seed=3)
  # Centre the weights so that activations keep both signs (ReLU/BN order matters then).
  variables['params'] = jax.tree.map(lambda x: (x - 1.0) * 0.5, variables['params'])
  sd = convert.to_official_state_dict(variables)
  sd = {k: v.astype(np.float16) for k, v in sd.items()}  # float16 is accepted and cast
  images = np.random.default_rng(3).uniform(0, 1, (2, 32, 48, 3)).astype(np.float32)
  out = convert.run_official(sd, images)
  ref = _np_official_ae({k: v.astype(np.float64) for k, v in sd.items()}, images, 2, bn=True)
  assert out.shape == (2, 2, 6, 8, 12)
  assert _rel_err(out, ref) <= 1e-5


@pytest.mark.parametrize('name', FIXTURES)
def test_cli_npz_end_to_end(shared_data, tmp_path, capsys, name):
  path, _, sd, images, ref = _load_fixture(shared_data, name)
  out_dir = tmp_path / 'converted'
  convert.main([str(path), '--out', str(out_dir)])
  printed = capsys.readouterr().out
  config = json.loads((out_dir / 'model_config.json').read_text())
  arch = convert.infer_architecture(sd)
  assert config == {f'model.{k}': v for k, v in arch.items()}
  assert f'--config.model.num_stacks={arch["num_stacks"]}' in printed
  assert f'--config.init_checkpoint={out_dir.resolve()}' in printed

  restored = ocp.StandardCheckpointer().restore(out_dir / 'variables')
  model = convert.build_model({k[len('model.'):]: v for k, v in config.items()})
  variables = {'params': restored['params'], 'batch_stats': restored.get('batch_stats', {})}
  # Every used tensor comes back bit-exact (unused skip convs and counters are not stored).
  back = convert.to_official_state_dict(variables)
  assert set(back) <= set(sd) and len(back) >= len(sd) - sum('skip_layer' in k for k in sd)
  for k, v in back.items():
    if 'skip_layer' not in k and 'num_batches_tracked' not in k:
      np.testing.assert_array_equal(v, sd[k], err_msg=k)
  out = convert.apply_official_layout(model, variables, images)
  assert _rel_err(out, ref) <= 1e-4


def test_checkpoint_unwrapping_and_missing_torch(tmp_path, monkeypatch):
  sd = {'model.module.outs.0.conv.weight': np.ones((2, 3, 1, 1))}
  unwrapped = convert.state_dict_from_checkpoint({'epoch': 3, 'state_dict': sd})
  assert list(unwrapped) == list(sd)
  monkeypatch.setitem(sys.modules, 'torch', None)  # makes `import torch` fail
  with pytest.raises(SystemExit, match=r'pip install torch==2\.13\.0'):
    convert.load_state_dict_file(tmp_path / 'checkpoint.pth.tar')
