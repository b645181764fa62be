"""HigherHRNet: the network against the official code (parameter counts, the shared fixture in
float32 and float64, a shape the fixture does not have), the converter (official and MMPose
names, round trip, errors), the loss on hand-computed cases."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from hgjax import api
from hgjax import convert
from hgjax import defaults
from hgjax.methods import higherhrnet

DATA = Path(__file__).parent / 'data'


def _config(**model):
  c = defaults.get_config()
  c.dataset.name = 'coco'
  c.dataset.num_joints = 17
  c.dataset.image_size = 512
  c.model.kind = 'higherhrnet'
  c.model.num_outputs = 34
  for k, v in model.items():
    setattr(c.model, k, v)
  return c


def _num_params(config) -> int:
  model = api.build_model(config)
  size = higherhrnet.input_multiple(config)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, 3)),
                                             train=False))
  return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(shapes['params']))


def test_parameter_counts_of_the_official_w32_and_w48():
  """28,645,331 and 63,827,139: the official models' counts (higherhrnet.md section 1)."""
  assert _num_params(_config()) == 28_645_331
  w48 = _config(hrnet_widths=(48, 96, 192, 384), deconv_features=(48,))
  assert _num_params(w48) == 63_827_139


def _fixture(path):
  with np.load(path) as z:
    sd = {k[len('state_dict/'):]: z[k] for k in z.files if k.startswith('state_dict/')}
    outputs = [z[f'output{i}_nchw'] for i in range(3) if f'output{i}_nchw' in z.files]
    return sd, z['input_nhwc'], outputs


def _rel_err(out, ref):
  return float(np.abs(out - ref).max() / np.abs(ref).max())


def test_shared_fixture_reproduces_the_official_outputs(shared_data):
  sd, images, refs = _fixture(shared_data / 'official_fidelity' / 'hhr_w8_128.npz')
  arch = convert.infer_architecture(sd)
  assert arch == {'kind': 'higherhrnet', 'hrnet_widths': (8, 16, 32, 64),
                  'hrnet_modules': (1, 4, 3), 'hrnet_blocks': (4, 4, 4),
                  'hrnet_stage1_blocks': 4, 'deconv_features': (8,),
                  'deconv_kernel': 4, 'deconv_blocks': 4, 'deconv_cat_output': (True,),
                  'num_outputs': 34, 'num_joints': 17}
  outs = convert.run_official(sd, images)
  assert [o.shape for o in outs] == [(2, 34, 32, 32), (2, 17, 64, 64)]
  with np.load(shared_data / 'official_fidelity' / 'hhr_w8_128_f64.npz') as z:
    f64 = [z['output0_nchw_f64'], z['output1_nchw_f64']]
  for out, ref, ref64 in zip(outs, refs, f64, strict=True):
    assert _rel_err(out, ref) <= 1e-4
    assert _rel_err(out, ref64) <= 1e-4


FLOAT64_CHECK = r'''
import sys
import jax
jax.config.update('jax_enable_x64', True)
import jax.numpy as jnp
import numpy as np
from hgjax import convert
with np.load(sys.argv[1]) as z:
  sd = {k[len('state_dict/'):]: z[k] for k in z.files if k.startswith('state_dict/')}
  images = z['input_nhwc']
with np.load(sys.argv[2]) as z:
  refs = [z['output0_nchw_f64'], z['output1_nchw_f64']]
model, variables = convert.convert_state_dict(sd)
model = model.clone(dtype=jnp.float64)
variables = jax.tree.map(lambda v: np.asarray(v, np.float64), variables)
outs = model.apply(variables, jnp.asarray(images, jnp.float64), train=False)
errs = [float(np.abs(np.asarray(o).transpose(0, 3, 1, 2) - r).max() / np.abs(r).max())
        for o, r in zip(outs, refs)]
print(max(errs))
'''


def test_float64_run_equals_the_official_float64_outputs(shared_data):
  """The same graph in float64 (a subprocess: x64 is process-wide) against the official
  float64 outputs: an exact check of the network, independent of the host's float32 kernels."""
  root = shared_data / 'official_fidelity'
  out = subprocess.run([sys.executable, '-c', FLOAT64_CHECK, str(root / 'hhr_w8_128.npz'),
                        str(root / 'hhr_w8_128_f64.npz')], capture_output=True, text=True,
                       check=True)
  assert float(out.stdout.strip().splitlines()[-1]) < 1e-9


def test_unseen_shape_reproduces_the_official_outputs():
  """Other widths, module and block counts, two deconvs of kernel 3, a non-square input
  (tests/data/hhr_unseen.npz, made by the official code: tests/data/make_hhr_fixture.py)."""
  sd, images, refs = _fixture(DATA / 'hhr_unseen.npz')
  arch = convert.infer_architecture(sd)
  assert (arch['hrnet_widths'], arch['hrnet_modules'], arch['hrnet_blocks']) == (
      (4, 8, 12, 16), (1, 2, 1), (2, 1, 3))
  assert (arch['deconv_features'], arch['deconv_kernel'], arch['deconv_cat_output']) == (
      (8, 6), 3, (True, False))
  outs = convert.run_official(sd, images)
  assert [o.shape for o in outs] == [(2, 34, 16, 24), (2, 17, 32, 48), (2, 17, 64, 96)]
  for out, ref in zip(outs, refs, strict=True):
    assert _rel_err(out, ref) <= 1e-4


def test_mmpose_and_wrapped_names_convert_to_the_same_variables():
  sd, _, _ = _fixture(DATA / 'hhr_unseen.npz')
  _, plain = convert.convert_state_dict(sd)
  mmpose = {('keypoint_head.' if k.startswith(('final_layers', 'deconv_layers'))
             else 'backbone.') + k: v for k, v in sd.items()}
  _, from_mmpose = convert.convert_state_dict({f'module.{k}': v for k, v in mmpose.items()})
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(from_mmpose), strict=True):
    np.testing.assert_array_equal(a, b)
  # And back: the official names and layouts, bit-exact.
  back = convert.to_official_state_dict(plain)
  for name, value in back.items():
    np.testing.assert_array_equal(value, sd[name], err_msg=name)
  assert set(back) == set(sd)


def test_misshapen_and_foreign_state_dicts_are_named():
  sd, _, _ = _fixture(DATA / 'hhr_unseen.npz')
  bad = dict(sd)
  bad['deconv_layers.1.0.0.weight'] = np.zeros((8, 6, 2, 2), np.float32)
  with pytest.raises(ValueError, match=r'deconv_layers\.1\.0\.0\.weight: expected \(8, 6, 3, 3\), '
                     r'got \(8, 6, 2, 2\)'):
    convert.convert_state_dict(bad)
  with pytest.raises(ValueError, match="not an official checkpoint of any of"):
    convert.convert_state_dict({'fc.weight': np.zeros((2, 2))})


def test_cli_writes_a_checkpoint_and_the_config(tmp_path, capsys):
  out_dir = tmp_path / 'hhr'
  convert.main([str(DATA / 'hhr_unseen.npz'), '--out', str(out_dir)])
  config = json.loads((out_dir / 'model_config.json').read_text())
  assert config['model.kind'] == 'higherhrnet' and config['dataset.num_joints'] == 17
  assert config['model.deconv_features'] == [8, 6]
  assert 'ImageNet' in capsys.readouterr().out


# --- loss ----------------------------------------------------------------------------------------

def _small_config():
  c = _config(hrnet_widths=(4, 8), hrnet_modules=(1,), hrnet_blocks=(1,), deconv_features=(4,),
              deconv_blocks=1)
  c.dataset.image_size = 32
  c.targets.sigma = 1.0
  c.loss.push_weight = c.loss.pull_weight = 1e-3
  return c


def _perfect(config, keypoints):
  """Network outputs equal to the encoded maps of `keypoints` [P, K, 3], batch of one."""
  maps = higherhrnet.encode(config, keypoints, (32, 32))
  out0 = np.concatenate([maps['heatmaps'], maps['tags']], axis=-1)[None]
  return (jnp.asarray(out0), jnp.asarray(maps['heatmaps_x2'][None]))


def test_loss_terms_on_hand_computed_cases():
  config = _small_config()
  s = higherhrnet.settings(config)
  kp = np.zeros((2, 17, 3), np.float32)
  kp[0] = [[6.0 + j % 5, 6.0, 2.0] for j in range(17)]
  kp[1] = [[22.0, 10.0 + j % 7, 2.0] for j in range(17)]
  batch = {'keypoints': jnp.asarray(kp[None]), 'mask': jnp.ones((1, 8, 8), jnp.float32)}
  targets = higherhrnet.render_targets(batch, s)
  outputs = _perfect(config, kp)
  total, terms = higherhrnet.loss(outputs, targets, s)
  # Tags 0 and 1 (person indices): push 0.5 * exp(-1) x 1e-3; heatmaps and pull exact.
  assert float(terms['heatmap_mse_0']) == pytest.approx(0.0, abs=1e-12)
  assert float(terms['heatmap_mse_1']) == pytest.approx(0.0, abs=1e-12)
  assert float(terms['pull']) == pytest.approx(0.0, abs=1e-12)
  assert float(terms['push']) == pytest.approx(0.5 * np.exp(-1.0), rel=1e-6)
  assert float(total) == pytest.approx(1e-3 * 0.5 * np.exp(-1.0), rel=1e-6)
  # +0.5 on one pixel of the 1/2 map: mean over 17 x 16 x 16 of 0.25 (factor 1).
  bad = (outputs[0], outputs[1].at[0, 3, 4, 5].add(0.5))
  _, terms = higherhrnet.loss(bad, targets, s)
  assert float(terms['heatmap_mse_1']) == pytest.approx(0.25 / (17 * 16 * 16), rel=1e-5)
  # The 1/4 mask, upsampled, removes that pixel from the 1/2 loss; the masked pixel still
  # counts in the mean's denominator (the official HeatmapLoss).
  masked = dict(batch, mask=batch['mask'].at[0, 1, 2].set(0.0))
  _, terms = higherhrnet.loss(bad, higherhrnet.render_targets(masked, s), s)
  assert float(terms['heatmap_mse_1']) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.slow
def test_train_step_gradients_are_finite_for_empty_images():
  config = _small_config()
  s = higherhrnet.settings(config)
  model = api.build_model(config)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
  batch = {'keypoints': jnp.zeros((2, 3, 17, 3)), 'mask': jnp.ones((2, 8, 8))}
  images = higherhrnet.normalize_images(jnp.zeros((2, 32, 32, 3), jnp.uint8))

  def objective(params):
    outputs, _ = model.apply({**variables, 'params': params}, images, train=True,
                             mutable=['batch_stats'])
    return higherhrnet.loss(outputs, higherhrnet.render_targets(batch, s), s)[0]

  grads = jax.grad(objective)(variables['params'])
  flat = traverse_util.flatten_dict(grads, sep='/')
  assert all(np.all(np.isfinite(np.asarray(g))) for g in flat.values())


# --- codec ---------------------------------------------------------------------------------------

def _codec_config(project_to_input):
  c = _config()
  c.dataset.image_size = 128
  c.targets.sigma = 2.0
  c.eval.project_to_input = project_to_input
  return c


@pytest.mark.parametrize('project_to_input', [True, False])
def test_codec_round_trip_recovers_every_person(project_to_input):
  """people -> encode -> decode (merge as at inference, the official parser) -> the same
  people: every person, joints within one 1/4-grid pixel."""
  config = _codec_config(project_to_input)
  rng = np.random.default_rng(0)
  for _ in range(3):
    truth = np.zeros((3, 17, 3), np.float32)
    for p in range(3):                          # one 40 px band per person: Gaussians apart
      truth[p, :, 0] = rng.uniform(2, 125, 17)
      truth[p, :, 1] = 40 * p + rng.uniform(2, 37, 17)
      truth[p, :, 2] = np.where(rng.uniform(size=17) < 0.85, 2.0, 0.0)
    maps = api.encode(config, truth, (128, 128))
    assert set(maps) == {'heatmaps', 'tags', 'heatmaps_x2'}
    assert maps['heatmaps_x2'].shape == (64, 64, 17) and maps['tags'].shape == (32, 32, 17)
    people, scores = api.decode(config, maps, (128, 128))
    assert len(people) == 3 and np.all(np.diff(scores) <= 0)
    for t in truth:
      vis = t[:, 2] > 0
      errors = [np.linalg.norm(p[vis, :2] - t[vis, :2], axis=-1).max() for p in people]
      assert min(errors) / 4 <= 1.0, min(errors) / 4


def test_device_targets_equal_host_encoding_at_both_resolutions():
  config = _codec_config(True)
  truth = np.array([[[20.0 + j, 30.0, 2.0] for j in range(17)],
                    [[90.0, 60.0 + j, 1.0] for j in range(17)]], np.float32)
  targets = higherhrnet.render_targets({'keypoints': jnp.asarray(truth[None])},
                                       higherhrnet.settings(config))
  maps = higherhrnet.encode(config, truth, (128, 128))
  np.testing.assert_allclose(np.asarray(targets['heatmaps_0'][0]), maps['heatmaps'], atol=1e-6)
  np.testing.assert_allclose(np.asarray(targets['heatmaps_1'][0]), maps['heatmaps_x2'],
                             atol=1e-6)
  # The official window: 3 sigma + 1 = 7 pixels either side of the peak, not 6.
  row = np.asarray(targets['heatmaps_1'][0, 15, :, 0])      # (20, 30) px -> (9.75, 14.75)
  assert row[int(9.75 + 7)] > 0 and row[int(9.75 + 8)] == 0


def test_split_outputs_has_the_layout_of_encode():
  config = _codec_config(True)
  outputs = (np.zeros((32, 32, 34), np.float32), np.zeros((64, 64, 17), np.float32))
  split = higherhrnet.split_outputs(config, outputs)
  encoded = higherhrnet.encode(config, np.zeros((1, 17, 3), np.float32), (128, 128))
  assert {k: v.shape for k, v in split.items()} == {k: v.shape for k, v in encoded.items()}


def test_pretrained_backbone_loads_by_official_name_and_refuses_a_misfit():
  """`model.init_from`: an ImageNet-style HRNet checkpoint (the backbone's names plus
  classification-only tensors) fills the backbone and nothing else; a stem of another shape
  is refused."""
  sd, _, _ = _fixture(DATA / 'hhr_unseen.npz')
  arch = convert.infer_architecture(sd)
  model = convert.build_model(arch)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                             train=False))
  variables = jax.tree.map(lambda s: np.zeros(s.shape, np.float32), shapes)
  imagenet = {k: v for k, v in sd.items() if not k.startswith(('final_layers', 'deconv'))}
  imagenet['incre_modules.0.0.conv1.weight'] = np.ones((32, 4, 1, 1), np.float32)
  imagenet['classifier.weight'] = np.ones((1000, 2048), np.float32)
  new, loaded, extra, absent = convert.load_pretrained(variables, imagenet, 'higherhrnet')
  assert extra == ['classifier.weight', 'incre_modules.0.0.conv1.weight']
  assert absent and all(n.startswith(('final_layers', 'deconv_layers')) for n in absent)
  assert len(loaded) == len([k for k in imagenet if not k.endswith('num_batches_tracked')]) - 2
  back = convert.to_official_state_dict(new)
  np.testing.assert_array_equal(back['stage4.0.branches.3.2.conv2.weight'],
                                sd['stage4.0.branches.3.2.conv2.weight'])
  assert not back['final_layers.0.weight'].any()                  # the head is untouched
  imagenet['conv1.weight'] = np.ones((32, 3, 3, 3), np.float32)   # a wider stem
  with pytest.raises(ValueError, match=r'conv1\.weight: expected \(64, 3, 3, 3\), got '
                     r'\(32, 3, 3, 3\) \(nothing was loaded\)'):
    convert.load_pretrained(variables, imagenet, 'higherhrnet')
