"""OpenPose: the network against the official graph (parameter counts of the COCO and MPI models,
the shared fixture in float32 and float64, a random graph of other widths, stage and channel
counts on a non-square input against a float64 numpy reference written here), the converter
(both official namings, errors), the input normalisation, the loss on hand-computed cases and
the paper recipe's optimiser."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import coco_openpose
from hgjax import api
from hgjax import bench
from hgjax import convert
from hgjax import defaults
from hgjax import train
from hgjax.methods import openpose

FIXTURE = 'openpose_coco_w8_184'


def _num_params(config) -> int:
  model = api.build_model(config)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 368, 368, 3)),
                                             train=False))
  return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(shapes['params']))


def _mpi_config():
  c = coco_openpose.get_config()
  c.model.openpose_stages = 4
  c.model.openpose_paf_channels = 28
  c.model.openpose_heatmap_channels = 16
  return c


def test_parameter_counts_of_the_official_coco_and_mpi_models():
  """52,311,446 (COCO, 6 stages, 38 / 19) and 34,240,880 (MPI 4 stages, 28 / 16), the counts
  of the official prototxts (openpose.md section 1); the bench config builds the COCO model."""
  assert _num_params(coco_openpose.get_config()) == 52_311_446
  assert _num_params(_mpi_config()) == 34_240_880
  assert _num_params(bench.make_config('openpose', 1, 2, 368, 'float32')) == 52_311_446


def test_mpi_architecture_is_inferred_from_shapes():
  """A state dict with the 4-stage MPI shapes (zero-size-in-memory broadcast views) is
  recognised as such."""
  config = _mpi_config()
  model = api.build_model(config)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3))))
  flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
  sd = {}
  for path, leaf in flat:
    key = tuple(k.key for k in path)
    name = openpose.OFFICIAL.official_name(key)
    torch_shape = {4: lambda h, w, i, o: (o, i, h, w), 2: lambda i, o: (o, i, 1, 1),
                   1: lambda o: (o,)}[len(leaf.shape)](*leaf.shape)
    sd[name.split('.', 1)[1]] = np.broadcast_to(np.float32(0), torch_shape)
  arch = convert.infer_architecture(sd)
  m = config.model
  assert arch == {'kind': 'openpose', 'openpose_trunk_widths': m.openpose_trunk_widths,
                  'openpose_stages': 4, 'openpose_stage1_widths': (128, 512),
                  'openpose_stage_widths': (128, 128), 'openpose_paf_channels': 28,
                  'openpose_heatmap_channels': 16, 'num_outputs': 44}


# --- the shared fixture ---------------------------------------------------------------------------

def _fixture(shared_data):
  root = shared_data / 'official_fidelity'
  with np.load(root / f'{FIXTURE}.npz') as z:
    sd = {k[len('state_dict/'):]: z[k] for k in z.files if k.startswith('state_dict/')}
    arrays = {k: z[k] for k in z.files if not k.startswith('state_dict/')}
  with np.load(root / f'{FIXTURE}_f64.npz') as z:
    arrays.update({k: z[k] for k in z.files})
  return sd, arrays


def _stacked(arrays, name, suffix=''):
  """[T, N, C, h, w] of the fixture's per-stage arrays `{name}_stage{t}_nchw{suffix}`."""
  return np.stack([arrays[f'{name}_stage{t}_nchw{suffix}'] for t in range(1, 7)])


def _rel_err(out, ref) -> float:
  return float(np.abs(out - ref).max() / np.abs(ref).max())


def test_shared_fixture_reproduces_the_official_outputs(shared_data):
  """Every stage's PAFs and heatmaps before activation, within 1e-4 relative of the official
  float32 outputs and of the float64 ones (stage 6: not Hzzone's ReLU'd heatmaps)."""
  sd, arrays = _fixture(shared_data)
  arch = convert.infer_architecture(sd)
  assert arch == {'kind': 'openpose',
                  'openpose_trunk_widths': (8, 8, 16, 16, 32, 32, 32, 32, 64, 64, 32, 16),
                  'openpose_stages': 6, 'openpose_stage1_widths': (16, 64),
                  'openpose_stage_widths': (16, 16), 'openpose_paf_channels': 38,
                  'openpose_heatmap_channels': 19, 'num_outputs': 57}
  pafs, heatmaps = convert.run_official(sd, arrays['input_nhwc'])
  assert pafs.shape == (6, 1, 38, 23, 23) and heatmaps.shape == (6, 1, 19, 23, 23)
  for out, name in ((pafs, 'paf'), (heatmaps, 'heatmap')):
    assert _rel_err(out, _stacked(arrays, name)) <= 1e-4
    assert _rel_err(out, _stacked(arrays, name, '_f64')) <= 1e-4
  np.testing.assert_allclose(pafs[-1], arrays['hzzone_out_paf_nchw'], rtol=0, atol=1e-4)
  assert heatmaps[-1].min() < -0.1           # no ReLU on the final heatmaps (Hzzone has one)
  np.testing.assert_allclose(np.maximum(heatmaps[-1], 0), arrays['hzzone_out_heatmap_nchw'],
                             rtol=0, atol=1e-4)


def test_normalize_images_is_the_official_input(shared_data):
  """hgjax's RGB uint8 -> the official BGR / 256 - 0.5, exactly."""
  _, arrays = _fixture(shared_data)
  rgb = arrays['image_bgr_uint8_nhwc'][..., ::-1]
  np.testing.assert_array_equal(np.asarray(openpose.normalize_images(jnp.asarray(rgb))),
                                arrays['input_nhwc'])


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
  refs = [z[f'{n}_stage{t}_nchw_f64'] for t in range(1, 7) for n in ('paf', 'heatmap')]
model, variables = convert.convert_state_dict(sd)
model = model.clone(dtype=jnp.float64)
variables = jax.tree.map(lambda v: np.asarray(v, np.float64), variables)
out = np.asarray(model.apply(variables, jnp.asarray(images, jnp.float64))).transpose(1, 0, 4, 2, 3)
outs = [o for stage in out for o in (stage[:, :38], stage[:, 38:])]
print(max(float(np.abs(o - r).max() / np.abs(r).max()) for o, r in zip(outs, refs)))
'''


def test_float64_run_equals_the_official_float64_outputs(shared_data):
  """The same graph in float64 (a subprocess: x64 is process-wide) against the official float64
  outputs: an exact check of the graph, independent of the host's float32 kernels."""
  root = shared_data / 'official_fidelity'
  out = subprocess.run([sys.executable, '-c', FLOAT64_CHECK, str(root / f'{FIXTURE}.npz'),
                        str(root / f'{FIXTURE}_f64.npz')], capture_output=True, text=True,
                       check=True)
  assert float(out.stdout.strip().splitlines()[-1]) < 1e-9


def test_released_names_convert_to_the_same_variables(shared_data):
  """`body_pose_model.pth` names (no `model0.` / `model2_1.` component) give the same
  variables; back to the official (grouped) names bit-exactly."""
  sd, _ = _fixture(shared_data)
  released = {name.split('.', 1)[1]: value for name, value in sd.items()}
  assert 'conv1_1.weight' in released and 'Mconv7_stage6_L2.bias' in released
  _, grouped = convert.convert_state_dict(sd)
  _, bare = convert.convert_state_dict({f'module.{k}': v for k, v in released.items()})
  for a, b in zip(jax.tree.leaves(grouped), jax.tree.leaves(bare), strict=True):
    np.testing.assert_array_equal(a, b)
  back = convert.to_official_state_dict(bare)
  assert set(back) == set(sd)
  for name, value in back.items():
    np.testing.assert_array_equal(value, sd[name], err_msg=name)


# --- a graph the fixture does not have, against a float64 numpy reference -------------------------

TRUNK = ('conv1_1', 'conv1_2', 'pool', 'conv2_1', 'conv2_2', 'pool', 'conv3_1', 'conv3_2',
         'conv3_3', 'conv3_4', 'pool', 'conv4_1', 'conv4_2', 'conv4_3_CPM', 'conv4_4_CPM')


def _branch_layers(stage: int, branch: int) -> list:
  """The official layer names of one branch, first to last (the last has no ReLU)."""
  if stage == 1:
    return [f'conv5_{i}_CPM_L{branch}' for i in range(1, 6)]
  return [f'Mconv{i}_stage{stage}_L{branch}' for i in range(1, 8)]


def _random_state_dict(rng, trunk, stage1, later, stages, pafs, heatmaps) -> dict:
  """Official (grouped) names -> float32 OIHW weights N(0, 2 / fan_in) and biases U(-0.1, 0.1)."""
  sd = {}

  def add(group, name, cout, cin, k):
    w = rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k))
    sd[f'{group}.{name}.weight'] = w.astype(np.float32)
    sd[f'{group}.{name}.bias'] = rng.uniform(-0.1, 0.1, cout).astype(np.float32)

  cin = 3
  for name, width in zip([n for n in TRUNK if n != 'pool'], trunk, strict=True):
    add('model0', name, width, cin, 3)
    cin = width
  features = cin
  for t in range(1, stages + 1):
    for b, out in ((1, pafs), (2, heatmaps)):
      names = _branch_layers(t, b)
      if t == 1:
        specs = [(stage1[0], 3)] * 3 + [(stage1[1], 1), (out, 1)]
        c = features
      else:
        specs = [(later[0], 7)] * 5 + [(later[1], 1), (out, 1)]
        c = pafs + heatmaps + features
      for name, (width, k) in zip(names, specs, strict=True):
        add(f'model{t}_{b}', name, width, c, k)
        c = width
  return sd


def _conv_f64(x, w, b):
  """Official conv (stride 1, padding k // 2) in float64: x [C, H, W], w [O, C, k, k]."""
  k = w.shape[-1]
  c, h, wd = x.shape
  xp = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2)))
  cols = np.stack([xp[:, dy:dy + h, dx:dx + wd] for dy in range(k) for dx in range(k)], axis=1)
  out = w.reshape(w.shape[0], -1).astype(np.float64) @ cols.reshape(c * k * k, h * wd)
  return out.reshape(-1, h, wd) + b.astype(np.float64)[:, None, None]


def _reference(sd, image_nhwc, stages):
  """The official prototxt graph in float64, one image [H, W, 3] -> (pafs, heatmaps) per
  stage, [T, C, H/8, W/8] each."""
  x = np.asarray(image_nhwc, np.float64).transpose(2, 0, 1)
  for name in TRUNK:
    if name == 'pool':
      c, h, w = x.shape
      x = x.reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))
    else:
      x = np.maximum(_conv_f64(x, sd[f'model0.{name}.weight'], sd[f'model0.{name}.bias']), 0)
  features, outs = x, []
  for t in range(1, stages + 1):
    stage_in = features if t == 1 else np.concatenate([outs[-1][0], outs[-1][1], features])
    branches = []
    for b in (1, 2):
      y = stage_in
      names = _branch_layers(t, b)
      for i, name in enumerate(names):
        g = f'model{t}_{b}.{name}'
        y = _conv_f64(y, sd[f'{g}.weight'], sd[f'{g}.bias'])
        if i < len(names) - 1:
          y = np.maximum(y, 0)
      branches.append(y)
    outs.append(branches)
  return np.stack([o[0] for o in outs]), np.stack([o[1] for o in outs])


@pytest.fixture(scope='module')
def unseen():
  """Other widths at every layer, 3 stages, 6 PAF / 5 heatmap channels; released names."""
  rng = np.random.default_rng(7)
  sd = _random_state_dict(rng, (4, 6, 8, 8, 12, 12, 10, 12, 16, 16, 12, 8), (8, 20), (6, 10),
                          3, 6, 5)
  images = rng.uniform(-0.5, 0.5, (2, 48, 72, 3)).astype(np.float32)
  released = {name.split('.', 1)[1]: value for name, value in sd.items()}
  return sd, released, images


def test_unseen_shapes_equal_a_float64_reference(unseen):
  sd, released, images = unseen
  arch = convert.infer_architecture(released)
  assert (arch['openpose_trunk_widths'], arch['openpose_stage1_widths'],
          arch['openpose_stage_widths'], arch['openpose_stages']) == (
      (4, 6, 8, 8, 12, 12, 10, 12, 16, 16, 12, 8), (8, 20), (6, 10), 3)
  assert (arch['openpose_paf_channels'], arch['openpose_heatmap_channels']) == (6, 5)
  pafs, heatmaps = convert.run_official(released, images)
  assert pafs.shape == (3, 2, 6, 6, 9) and heatmaps.shape == (3, 2, 5, 6, 9)
  for n in range(2):
    ref_pafs, ref_heat = _reference(sd, images[n], 3)
    assert _rel_err(pafs[:, n], ref_pafs) <= 1e-4
    assert _rel_err(heatmaps[:, n], ref_heat) <= 1e-4


def test_input_sides_must_be_multiples_of_8(unseen):
  _, released, images = unseen
  with pytest.raises(ValueError, match=r'input size 44x72 \(H x W\) is not a multiple of 8'):
    convert.run_official(released, images[:, :44])
  model = api.build_model(coco_openpose.get_config())
  with pytest.raises(ValueError, match=r'input size 368x372'):
    jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 368, 372, 3))))


def test_misshapen_and_foreign_state_dicts_are_named(unseen):
  _, released, _ = unseen
  bad = dict(released)
  bad['Mconv3_stage2_L2.weight'] = np.zeros((6, 6, 5, 5), np.float32)
  with pytest.raises(ValueError, match=r'model2_2\.Mconv3_stage2_L2\.weight: expected '
                     r'\(6, 6, 7, 7\), got \(6, 6, 5, 5\)'):
    convert.convert_state_dict(bad)
  missing = {k: v for k, v in released.items() if not k.startswith('conv3_2.')}
  with pytest.raises(ValueError, match=r"missing tensor 'model0\.conv3_2\.weight' \(needed to "
                     r'infer the trunk widths\)'):
    convert.convert_state_dict(missing)
  extra = dict(released, **{'Mconv1_stage9_L2.weight': np.zeros((6, 19, 7, 7), np.float32)})
  with pytest.raises(ValueError, match=r'unexpected tensors \(1\): model9_2\.Mconv1_stage9_L2'):
    convert.convert_state_dict(extra)
  with pytest.raises(ValueError, match='not an official checkpoint of any of'):
    convert.convert_state_dict({'features.0.weight': np.zeros((64, 3, 3, 3), np.float32)})


# --- method functions -----------------------------------------------------------------------------

def test_split_outputs_takes_pafs_then_heatmaps():
  config = coco_openpose.get_config()
  outputs = np.arange(57.0)[None, None]
  split = openpose.split_outputs(config, outputs)
  np.testing.assert_array_equal(split['pafs'][0, 0], np.arange(38.0))
  np.testing.assert_array_equal(split['heatmaps'][0, 0], np.arange(38.0, 57.0))
  assert openpose.num_outputs(config) == 57
  assert openpose.input_multiple(config) == 8
  assert openpose.map_stride(config) == 1          # eval.project_to_input: maps at image size
  config.eval.project_to_input = False
  assert openpose.map_stride(config) == 8


def test_loss_is_the_caffe_euclidean_loss_of_all_stages_and_branches():
  """Sum over stages and branches of sum((w * pred - w * gt)^2) / (2 B), B = 2."""
  s = openpose.Settings(paf_channels=2, heatmap_channels=1, stride=8, grid_size=2, sigma_px=7.0,
                        heatmap_mode='max', paf_mode='average', limb_width=1.0, flip=False,
                        project_to_input=False)
  rng = np.random.default_rng(0)
  targets = {'pafs': jnp.asarray(rng.uniform(-1, 1, (2, 2, 2, 2)), jnp.float32),
             'heatmaps': jnp.asarray(rng.uniform(0, 1, (2, 2, 2, 1)), jnp.float32),
             'mask': jnp.ones((2, 2, 2), jnp.float32)}
  perfect = jnp.broadcast_to(jnp.concatenate([targets['pafs'], targets['heatmaps']], -1)[:, None],
                             (2, 3, 2, 2, 3))
  total, terms = openpose.loss(perfect, targets, s)
  assert float(total) == pytest.approx(0.0, abs=1e-12)
  # +0.5 on one PAF entry of stage 2 and -1 on one heatmap pixel of stages 1 and 3.
  wrong = perfect.at[0, 1, 1, 0, 1].add(0.5).at[1, 0, 0, 1, 2].add(-1.0).at[1, 2, 0, 1, 2].add(-1)
  total, terms = openpose.loss(wrong, targets, s)
  assert float(terms['paf_loss']) == pytest.approx(0.25 / 4, rel=1e-6)
  assert float(terms['heatmap_loss']) == pytest.approx(2 * 1.0 / 4, rel=1e-6)
  assert float(total) == pytest.approx(0.25 / 4 + 2 / 4, rel=1e-6)
  # The mask multiplies prediction and target: it enters squared; 0 removes the pixel.
  masked = dict(targets, mask=targets['mask'].at[0, 1, 0].set(0.5).at[1, 0, 1].set(0.0))
  _, terms = openpose.loss(wrong, masked, s)
  assert float(terms['paf_loss']) == pytest.approx(0.25 * 0.25 / 4, rel=1e-6)
  assert float(terms['heatmap_loss']) == pytest.approx(0.0, abs=1e-12)


def test_paper_recipe_optimizer_has_caffe_lr_mult_and_no_bias_decay():
  """One SGD step from zero momentum: update = -lr * lr_mult * (g + wd * w), lr_mult 1 / 2
  (weights / biases) before stage 2 and 4 / 8 from stage 2 on, no decay on biases."""
  config = coco_openpose.get_config()
  params = {'model0': {'conv1_1': {'kernel': jnp.ones((2,)), 'bias': jnp.ones((2,))}},
            'model1_2': {'conv5_5_CPM_L2': {'kernel': jnp.ones((2,)), 'bias': jnp.ones((2,))}},
            'model2_1': {'Mconv1_stage2_L1': {'kernel': jnp.ones((2,)),
                                              'bias': jnp.ones((2,))}},
            'model12_2': {'Mconv7_stage12_L2': {'kernel': jnp.ones((2,)),
                                                'bias': jnp.ones((2,))}}}
  grads = jax.tree.map(lambda p: 0.5 * p, params)
  tx = train.make_optimizer(config)
  updates, _ = tx.update(grads, tx.init(params), params)
  lr, wd = 4e-5, 5e-4
  expected = {'model0': (1, 2), 'model1_2': (1, 2), 'model2_1': (4, 8), 'model12_2': (4, 8)}
  for group, (weight_mult, bias_mult) in expected.items():
    (layer,) = updates[group].values()
    np.testing.assert_allclose(layer['kernel'], -lr * weight_mult * (0.5 + wd), rtol=1e-6)
    np.testing.assert_allclose(layer['bias'], -lr * bias_mult * 0.5, rtol=1e-6)
  # The defaults add nothing (the optimiser state of existing configs is unchanged).
  plain = defaults.get_config()
  plain.optimizer.name = 'sgd'
  plain.optimizer.momentum = 0.9
  assert (jax.tree.structure(train.make_optimizer(plain).init(params))
          == jax.tree.structure(optax.sgd(train.make_schedule(plain), momentum=0.9).init(params)))


# --- codec, targets on device, inference ---------------------------------------------------------

# A standing COCO-17 person of unit height facing the camera (x right, y down; its left side on
# the image's right), scaled and placed by `_person`.
STANDING = np.array([
    (0.0, 0.08), (0.04, 0.05), (-0.04, 0.05), (0.08, 0.07), (-0.08, 0.07),
    (0.13, 0.22), (-0.13, 0.22), (0.17, 0.38), (-0.17, 0.38), (0.19, 0.53), (-0.19, 0.53),
    (0.08, 0.52), (-0.08, 0.52), (0.09, 0.74), (-0.09, 0.74), (0.10, 0.96), (-0.10, 0.96)])


# Joints at the end of the parser's limb tree (ears, wrists, ankles): one missing loses nothing
# else. (A missing knee also loses its ankle: no limb joins the ankle to the rest.)
LEAVES = (3, 4, 9, 10, 15, 16)


def _person(x0, y0, height, visible):
  """[17, 3] (x, y, v) input pixels: `STANDING` at (x0, y0) (top centre), v 2 where visible."""
  xy = STANDING * height + np.array([x0, y0])
  return np.concatenate([xy, np.where(visible, 2.0, 0.0)[:, None]], axis=-1)


def _codec_config(heatmap_mode='max', paf_mode='average'):
  c = defaults.get_config()
  c.dataset.name = 'synthetic_scenes'
  c.dataset.num_joints = 17
  c.dataset.image_size = 256
  c.dataset.heatmap_stride = 8
  c.model.kind = 'openpose'
  c.model.num_outputs = 57
  c.targets.openpose_heatmap_mode = heatmap_mode
  c.targets.openpose_paf_mode = paf_mode
  return c


def _match_error(people, truth):
  """Max over true people of the joint distance to their closest decoded person (visible
  joints), and that person's found-joint mask equals the visible mask."""
  worst = 0.0
  for t in truth:
    vis = t[:, 2] > 0
    errors = [np.linalg.norm(p[vis, :2] - t[vis, :2], axis=-1).max() for p in people]
    best = int(np.argmin(errors))
    np.testing.assert_array_equal(people[best][:, 2] > 0, vis)
    worst = max(worst, errors[best])
  return worst


@pytest.mark.parametrize('modes', [('max', 'average'), ('sum_clip', 'overwrite')])
def test_codec_round_trip_within_half_a_stride(modes):
  """people -> encode (ideal stride-8 maps) -> decode (cubic x8, the official parser) -> the
  same people, every visible joint within half a stride (4 px), missing joints missing."""
  config = _codec_config(*modes)
  rng = np.random.default_rng(0)
  image_hw = (256, 384)
  for _ in range(3):
    heights = rng.uniform(150, 200, 3)
    truth = np.stack([
        _person(70 + 120 * p + rng.uniform(-8, 8), rng.uniform(20, 250 - h), h,
                np.arange(17) != rng.choice(LEAVES))          # one leaf joint missing
        for p, h in enumerate(heights)]).astype(np.float32)
    maps = api.encode(config, truth, image_hw)
    assert maps['heatmaps'].shape == (32, 48, 19) and maps['pafs'].shape == (32, 48, 38)
    people, scores = api.decode(config, maps, image_hw)
    assert people.shape == (3, 17, 3) and np.all(np.diff(scores) <= 0)
    assert _match_error(people, truth) <= 4.0


def test_encode_has_the_layout_of_one_stage_and_device_targets_equal_it():
  config = _codec_config()
  truth = np.stack([_person(90, 30, 180, np.ones(17, bool)),
                    _person(180, 40, 170, np.arange(17) != 6)]).astype(np.float32)
  encoded = openpose.encode(config, truth, (256, 256))
  split = openpose.split_outputs(config, np.zeros((32, 32, 57), np.float32))
  assert {k: v.shape for k, v in encoded.items()} == {k: v.shape for k, v in split.items()}
  stage = np.concatenate([encoded[k] for k in split], axis=-1)
  np.testing.assert_array_equal(openpose.split_outputs(config, stage)['heatmaps'],
                                encoded['heatmaps'])
  targets = openpose.render_targets({'keypoints': jnp.asarray(truth[None])},
                                    openpose.settings(config))
  np.testing.assert_allclose(np.asarray(targets['heatmaps'][0]), encoded['heatmaps'], atol=1e-6)
  np.testing.assert_allclose(np.asarray(targets['pafs'][0]), encoded['pafs'], atol=1e-6)
  np.testing.assert_array_equal(np.asarray(targets['mask']), 1.0)
  # The neck (part 1) peaks at the mean of the shoulders; the missing right shoulder of person 2
  # leaves its neck undrawn (one neck peak only).
  neck = encoded['heatmaps'][..., 1]
  mid = truth[0, 5:7, :2].mean(axis=0)
  u, v = np.round((mid + 0.5) / 8 - 0.5).astype(int)
  d2 = (8 * u + 3.5 - mid[0]) ** 2 + (8 * v + 3.5 - mid[1]) ** 2
  assert neck[v, u] == pytest.approx(np.exp(-d2 / (2 * 7.0 ** 2)), abs=1e-5)
  assert np.unravel_index(np.argmax(neck), neck.shape) == (v, u)
  assert neck[:, 20:].max() < 0.05


def test_api_parse_heatmaps_and_group_agree():
  """`api.parse_heatmaps(heatmap [H, W, 19], paf [H, W, 38], 'openpose')` is the 18-part parser
  of `group` (which drops the neck), on maps at image resolution."""
  config = _codec_config()
  config.eval.project_to_input = True
  truth = np.stack([_person(80, 30, 170, np.ones(17, bool)),
                    _person(190, 50, 160, np.ones(17, bool))]).astype(np.float32)
  maps = openpose.encode(config, truth, (256, 256))
  heat = np.asarray(openpose.resize_maps(jnp.asarray(maps['heatmaps'])[None], (256, 256))[0])
  pafs = np.asarray(openpose.resize_maps(jnp.asarray(maps['pafs'])[None], (256, 256))[0])
  people18, scores18 = api.parse_heatmaps(heat, pafs, 'openpose')
  assert people18.shape == (2, 18, 3)
  people, scores = openpose.group(config, {'heatmaps': heat, 'pafs': pafs})
  order = np.argsort(-scores18, kind='stable')
  np.testing.assert_array_equal(scores, scores18[order])
  np.testing.assert_array_equal(people[..., :2], people18[order][:, [0, 15, 14, 17, 16, 5, 2, 6,
                                                                     3, 7, 4, 11, 8, 12, 9, 13,
                                                                     10], :2])
  with pytest.raises(ValueError, match=r'heatmaps must be \[H, W, 19\]'):
    api.parse_heatmaps(heat[..., :18], pafs, 'openpose')
  empty, empty_scores = api.parse_heatmaps(np.zeros_like(heat), np.zeros_like(pafs), 'openpose')
  assert empty.shape == (0, 18, 3) and empty_scores.shape == (0,)


def test_flip_back_of_the_mirrored_person_gives_the_plain_maps():
  """The flip test's un-mirroring (R/L channels swapped, PAF x negated, `flip_back`): the maps
  of a person mirrored in the image, flipped back, are the maps of the person."""
  config = _codec_config()
  truth = np.stack([_person(100, 30, 170, np.ones(17, bool))]).astype(np.float32)
  plain = openpose.encode(config, truth, (256, 256))
  mirrored = truth.copy()
  mirrored[..., 0] = 255 - mirrored[..., 0]
  mirrored = mirrored[:, [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]]
  flipped = openpose.encode(config, mirrored, (256, 256))
  # The mirrored image's maps, flipped back, are the plain maps.
  heat, pafs = openpose.paf_targets.flip_back(flipped['heatmaps'], flipped['pafs'])
  np.testing.assert_allclose(heat, plain['heatmaps'], atol=1e-5)
  # PAF supports are not mirror symmetric at their ends (the box [round(min - 1), round(max +
  # 1)) is half-open): compare the vectors where both maps have a limb, most of the support.
  both = (np.abs(pafs) > 0) & (np.abs(plain['pafs']) > 0)
  np.testing.assert_allclose(pafs[both], plain['pafs'][both], atol=1e-5)
  assert both.sum() >= 0.8 * (np.abs(plain['pafs']) > 0).sum()
