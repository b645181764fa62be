"""Stacked Hourglass (Newell, Yang and Deng, ECCV 2016): single-person heatmap regression.

Network: `hgjax.nn.hourglass.StackedHourglass`; input RGB / 255 (the official code's scaling, no
mean or std). Targets: one Gaussian per joint at the continuous grid position (`hgjax.targets`,
convention 'continuous'); loss: per-stack MSE, masked per joint (and per pixel with a mask),
optionally foreground-weighted, summed over stacks (intermediate supervision). Decoding: the
argmax of each joint's heatmap with a sub-pixel step (`config.eval.refine`, 'quarter' in the
paper's code), flip test merged in on the device.
"""

import dataclasses
import re

import jax.numpy as jnp
import numpy as np

from hgjax import decode as heatmap_decode
from hgjax import losses
from hgjax import targets as heatmap_targets
from hgjax.methods import base
from hgjax.methods import official
from hgjax.nn import hourglass


@dataclasses.dataclass(frozen=True)
class Settings:
  """The static (hashable) values of a config that the jitted SHG functions read."""
  num_joints: int
  heatmap_size: int
  stride: int
  sigma: float
  foreground_weight: float
  intermediate_supervision: bool
  flip_perm: tuple | None       # joint permutation of the flip test, None = no flip test


def settings(config) -> Settings:
  d, lo = config.dataset, config.loss
  return Settings(num_joints=d.num_joints, heatmap_size=d.image_size // d.heatmap_stride,
                  stride=d.heatmap_stride, sigma=config.targets.sigma,
                  foreground_weight=lo.foreground_weight,
                  intermediate_supervision=lo.intermediate_supervision,
                  flip_perm=base.flip_perm(config))


def build_model(config) -> hourglass.StackedHourglass:
  """The StackedHourglass of `config.model`; outputs [B, S, H/4, W/4, num_outputs]."""
  m = config.model
  return hourglass.StackedHourglass(
      num_stacks=m.num_stacks, features=m.features, num_outputs=m.num_outputs, depth=m.depth,
      dtype=base.compute_dtype(config), stem_features=m.stem_features,
      scan_stacks=m.scan_stacks, remat_stacks=m.remat_stacks)


def num_outputs(config) -> int:
  return config.dataset.num_joints


def render_targets(batch, s: Settings) -> dict:
  """batch {'keypoints' [B, P, K, 3] input pixels, optional 'mask' [B, h, w]} ->
  {'heatmaps' [B, h, w, K], 'weight' [B, K] or, with a mask, [B, h, w, K]}."""
  kp = batch['keypoints']
  heat = heatmap_targets.render_heatmaps(kp, (s.heatmap_size, s.heatmap_size), s.stride,
                                         s.sigma)
  weight = heatmap_targets.joint_weights(kp)
  if 'mask' in batch:                                   # [B, h, w], 0 = ignore
    weight = weight[:, None, None, :] * batch['mask'][..., None]
  return {'heatmaps': heat, 'weight': weight}


def loss(outputs, targets: dict, s: Settings):
  """outputs [B, S, h, w, C] (channels [:K] are the heatmaps) -> (total, {'loss_stack{i}'}).
  Per stack: the batch mean of the weighted MSE; total: their sum (intermediate supervision)
  or the last stack's."""
  per_stack = losses.heatmap_mse(outputs[..., :s.num_joints], targets['heatmaps'],
                                 targets['weight'], s.foreground_weight).mean(axis=0)
  total = per_stack.sum() if s.intermediate_supervision else per_stack[-1]
  return total, {f'loss_stack{i}': per_stack[i] for i in range(per_stack.shape[0])}


def predict_maps(variables, images, *, model, settings: Settings) -> dict:
  """images uint8 [B, H, W, 3] -> {'heatmaps' [B, h, w, K]} of the last stack; with
  `settings.flip_perm` the mirrored image is run too and merged (flip test)."""
  x = base.unit_rgb(images)
  k = settings.num_joints
  heat = model.apply(variables, x, train=False)[:, -1, ..., :k]
  if settings.flip_perm is not None:
    heat_f = model.apply(variables, x[:, :, ::-1], train=False)[:, -1, ..., :k]
    heat = heatmap_decode.flip_merge(heat, heat_f, jnp.asarray(settings.flip_perm))
  return {'heatmaps': heat}


def split_outputs(config, outputs) -> dict:
  """outputs [..., C] -> {'heatmaps': [..., K]}."""
  return {'heatmaps': outputs[..., :config.dataset.num_joints]}


def encode(config, keypoints, image_hw) -> dict:
  """keypoints [P, K, 3] (input pixels) of an image of size image_hw -> {'heatmaps' [h, w, K]}
  numpy, h = H / stride (max over people)."""
  stride = config.dataset.heatmap_stride
  hw = (image_hw[0] // stride, image_hw[1] // stride)
  kp = jnp.asarray(np.asarray(keypoints, np.float32)[None])
  heat = heatmap_targets.render_heatmaps(kp, hw, stride, config.targets.sigma)[0]
  return {'heatmaps': np.asarray(heat)}


def group(config, maps: dict):
  """{'heatmaps' [h, w, K]} of one image -> (one person [1, K, 3] (u, v, peak value) in grid
  pixels, score [1] = mean peak value), refined per `config.eval.refine`."""
  heat = jnp.asarray(maps['heatmaps'], jnp.float32)[None]
  grid, scores = heatmap_decode.heatmap_peaks(heat, refine=config.eval.refine,
                                              blur_sigma=config.eval.blur_sigma)
  person = np.concatenate([np.asarray(grid[0]), np.asarray(scores[0])[:, None]], axis=1)
  return person[None], person[None, :, 2].mean(axis=1)


def parse(config, heatmaps, unused=None):
  """heatmaps [K, H, W] (the official layout) -> `group` of them: (one person [1, K, 3] (x, y,
  score) in heatmap pixels, score [1])."""
  del unused
  return group(config, {'heatmaps': np.moveaxis(np.asarray(heatmaps, np.float32), 0, -1)})


def decode(config, maps: dict, image_hw):
  """{'heatmaps' [h, w, K]} -> (people [1, K, 3] (x, y, score) in input pixels, scores [1])."""
  del image_hw    # the grid -> pixel map needs only the stride
  people, scores = group(config, maps)
  people[..., :2] = heatmap_decode.grid_to_input(people[..., :2], config.dataset.heatmap_stride)
  return people, scores


# --- official checkpoints: princeton-vl/pytorch_stacked_hourglass `PoseNet` -------------------

# Top-level hgjax module name -> official module prefix.
_OFFICIAL_TOP = (
    (r'stem_conv', 'pre.0.conv'),
    (r'stem_bn', 'pre.0.bn'),
    (r'stem_res1', 'pre.1'),
    (r'stem_res2', 'pre.3'),
    (r'stem_res3', 'pre.4'),
    (r'hourglass_(\d+)', r'hgs.\1.0'),
    (r'feature_res_(\d+)', r'features.\1.0'),
    (r'feature_conv_(\d+)', r'features.\1.1.conv'),
    (r'feature_bn_(\d+)', r'features.\1.1.bn'),
    (r'head_(\d+)', r'outs.\1.conv'),
    (r'merge_pred_(\d+)', r'merge_preds.\1.conv.conv'),
    (r'merge_feature_(\d+)', r'merge_features.\1.conv.conv'),
)


def _official_name(flat_key: tuple) -> str:
  collection, leaf = flat_key[0], flat_key[-1]
  modules = official.rename_top(list(flat_key[1:-1]), _OFFICIAL_TOP, 'Stacked Hourglass')
  if len(modules) > 1:
    # Inside an official Residual the convs are `Conv` wrappers (`.conv`) and the skip conv is
    # `skip_layer`.
    if modules[-1] in ('conv1', 'conv2', 'conv3'):
      modules[-1] += '.conv'
    elif modules[-1] == 'skip':
      modules[-1] = 'skip_layer.conv'
  return '.'.join(modules + [official.LEAVES[(collection, leaf)]])


def _matches(sd) -> bool:
  return official.has_heads(sd) and any(k.startswith('hgs.') for k in sd)


def _infer_architecture(sd) -> dict:
  return official.hourglass_architecture(sd, 'shg', 'hgs.0.0.', 'conv3.conv.weight',
                                         batch_norm=True, default_inner_increase=0)


def _build_official(arch, dtype=jnp.float32) -> hourglass.StackedHourglass:
  extra = {}
  if arch['increase'] or arch['inner_increase']:
    # The official SHG `Hourglass(n, f, bn, increase=0)` widens its outermost level only.
    # Built only if StackedHourglass offers that same `increase` field.
    if (arch['inner_increase']
        or 'increase' not in hourglass.StackedHourglass.__dataclass_fields__):
      raise ValueError(
          f'Stacked Hourglass with increase={arch["increase"]}, inner increase '
          f'{arch["inner_increase"]}: hgjax.nn.hourglass.StackedHourglass builds constant-width '
          'hourglasses only (the official default, increase=0)')
    extra['increase'] = arch['increase']
  return hourglass.StackedHourglass(
      num_stacks=arch['num_stacks'], features=arch['features'], num_outputs=arch['num_outputs'],
      depth=arch['depth'], dtype=dtype, stem_features=arch['stem_features'], **extra)


def _skip_owner(name: str) -> str | None:
  m = re.fullmatch(r'(.+)\.skip_layer\.conv\.(weight|bias)', name)
  return m.group(1) if m else None


def _unused(name: str, expected: set) -> bool:
  """The official Residual builds a `skip_layer` conv even when input and output widths are
  equal, and never uses it there."""
  residuals = {n.rsplit('.', 3)[0] for n in expected if n.endswith('.conv1.conv.weight')}
  return _skip_owner(name) in residuals


def _padding(sd: dict) -> dict:
  """Zero `skip_layer` convs for the equal-width residuals (unused, but in the official module)."""
  out = {}
  for name, value in sd.items():
    if name.endswith('.conv3.conv.weight'):
      prefix = name[:-len('conv3.conv.weight')]
      if prefix + 'skip_layer.conv.weight' not in sd:
        width = value.shape[0]
        out[prefix + 'skip_layer.conv.weight'] = np.zeros((width, width, 1, 1), np.float32)
        out[prefix + 'skip_layer.conv.bias'] = np.zeros((width,), np.float32)
  return out


OFFICIAL = official.OfficialFormat(
    matches=_matches, infer_architecture=_infer_architecture, build_model=_build_official,
    official_name=_official_name, owns=lambda variables: 'stem_conv' in variables['params'],
    unused=_unused, padding=_padding, note='')


METHOD = base.Method(
    name='shg', multi_person=False, target_stride=4, build_model=build_model,
    input_multiple=base.hourglass_input_multiple, map_stride=base.heatmap_stride,
    normalize_images=base.unit_rgb,
    num_outputs=num_outputs, settings=settings, render_targets=render_targets, loss=loss,
    predict_maps=predict_maps, encode=encode, decode=decode, split_outputs=split_outputs,
    group=group, parse=parse, official=OFFICIAL)
