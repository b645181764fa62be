"""Associative Embedding (Newell, Huang and Deng, NeurIPS 2017): bottom-up multi-person pose
with per-joint heatmaps and tags.

Network: `hgjax.nn.ae_hourglass.AssociativeEmbeddingNet`; input RGB / 255 (the released
code's scaling). Output channels of every stack, joint-major: [0, K) heatmaps, then
[K, K + K * D) tags, channel K + k * D + d being dimension d of joint k's tag (D =
`config.model.tag_dim`, 1 in the paper); channels past K + K * D are computed and ignored.

Loss per stack: heatmap MSE over every pixel and joint (masked by the crowd/unlabelled mask, as
the authors' code) + push_weight * push + pull_weight * pull (`hgjax.tag_loss`); summed over
stacks. Decoding: `hgjax.grouping.group` (NMS, top-k per joint, tag matching in the paper's
joint order, refinement of missing joints, sub-pixel step).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from hgjax import decode as heatmap_decode
from hgjax import grouping
from hgjax import losses
from hgjax import tag_loss
from hgjax import targets as heatmap_targets
from hgjax.methods import base
from hgjax.methods import official
from hgjax.nn import ae_hourglass


@dataclasses.dataclass(frozen=True)
class Settings:
  """The static (hashable) values of a config that the jitted AE functions read."""
  num_joints: int
  heatmap_size: int
  stride: int
  sigma: float
  foreground_weight: float
  intermediate_supervision: bool
  tag_dim: int
  push_weight: float
  pull_weight: float
  push_form: str
  push_margin: float
  flip_perm: tuple | None       # joint permutation of the flip test, None = no flip test


def settings(config) -> Settings:
  d, lo = config.dataset, config.loss
  return Settings(num_joints=d.num_joints, heatmap_size=d.image_size // d.heatmap_stride,
                  stride=d.heatmap_stride, sigma=config.targets.sigma,
                  foreground_weight=lo.foreground_weight,
                  intermediate_supervision=lo.intermediate_supervision,
                  tag_dim=config.model.tag_dim, push_weight=lo.push_weight,
                  pull_weight=lo.pull_weight, push_form=lo.push_form,
                  push_margin=lo.push_margin, flip_perm=base.flip_perm(config))


def build_model(config) -> ae_hourglass.AssociativeEmbeddingNet:
  """The AssociativeEmbeddingNet of `config.model`; outputs [B, S, H/4, W/4, num_outputs]."""
  return _build_official(config.model.to_dict(), base.compute_dtype(config))


def num_outputs(config) -> int:
  return config.dataset.num_joints * (1 + config.model.tag_dim)


def split_tags(outputs, num_joints: int, tag_dim: int):
  """outputs [..., C] -> (heatmaps [..., K], tags [..., K, D]) (layout: module docstring)."""
  k = num_joints
  heat = outputs[..., :k]
  tags = outputs[..., k:k + k * tag_dim]
  return heat, tags.reshape(tags.shape[:-1] + (k, tag_dim))


def render_targets(batch, s: Settings) -> dict:
  """batch {'keypoints' [B, P, K, 3] input pixels (padding rows v = 0), optional 'mask'
  [B, h, w] (1 = supervise the heatmaps)} -> {'heatmaps' [B, h, w, K], 'weight' [B, h, w, K]
  (the mask; it does not apply to tags, every kept person is labelled), 'tag_index' [B, P, K]
  and 'tag_valid' [B, P, K] (where each joint reads its tag, `tag_loss.tag_targets`)}."""
  kp = batch['keypoints']
  hw = (s.heatmap_size, s.heatmap_size)
  heat = heatmap_targets.render_heatmaps(kp, hw, s.stride, s.sigma)
  if 'mask' in batch:
    weight = jnp.broadcast_to(batch['mask'][..., None], heat.shape)
  else:
    weight = jnp.ones_like(heat)
  index, valid = tag_loss.tag_targets(kp, hw, s.stride)
  return {'heatmaps': heat, 'weight': weight, 'tag_index': index, 'tag_valid': valid}


@functools.partial(jax.jit, static_argnames=('s',))
def loss(outputs, targets: dict, s: Settings):
  """The AE loss of every stack: outputs [B, S, h, w, C] -> (total, terms).

  Per stack, the batch mean of heatmap MSE + push_weight * push + pull_weight * pull; total =
  the sum over stacks (intermediate supervision) or the last stack. The heatmap MSE is over
  every pixel and joint (mean over h, w, K) as in the authors' code: joints unlabelled in an
  image are still trained towards zero. Terms: 'loss_stack{i}', and the last stack's batch
  means 'heatmap_mse', 'push', 'pull'.
  """
  heat, tags = split_tags(outputs, s.num_joints, s.tag_dim)
  mse = losses.heatmap_mse(heat, targets['heatmaps'], targets['weight'],
                           s.foreground_weight)                           # [B, S]
  person_tags = jax.vmap(tag_loss.gather_tags, in_axes=(1, None), out_axes=1)(
      tags, targets['tag_index'])
  push_pull = functools.partial(tag_loss.push_pull, form=s.push_form, margin=s.push_margin)
  push, pull = jax.vmap(push_pull, in_axes=(1, None), out_axes=1)(person_tags,
                                                                  targets['tag_valid'])
  per_stack = (mse + s.push_weight * push + s.pull_weight * pull).mean(0)
  total = per_stack.sum() if s.intermediate_supervision else per_stack[-1]
  terms = {f'loss_stack{i}': per_stack[i] for i in range(per_stack.shape[0])}
  terms.update(heatmap_mse=mse[:, -1].mean(), push=push[:, -1].mean(), pull=pull[:, -1].mean())
  return total, terms


def predict_maps(variables, images, *, model, settings: Settings) -> dict:
  """images uint8 [B, S, S, 3] -> {'heatmaps' [B, h, w, K], 'tags' [B, h, w, K, T]} of the last
  stack; T = tag_dim, or 2 * tag_dim with the flip test: the mirrored image's heatmaps are
  flipped back, joint-swapped and averaged in, and its flipped-back, joint-swapped tags are
  appended as extra tag dimensions (the authors' test code)."""
  x = base.unit_rgb(images)
  if settings.flip_perm is not None:
    x = jnp.concatenate([x, x[:, :, ::-1]], axis=0)
  out = model.apply(variables, x, train=False)[:, -1]
  heat, tags = split_tags(out, settings.num_joints, settings.tag_dim)
  if settings.flip_perm is None:
    return {'heatmaps': heat, 'tags': tags}
  b = images.shape[0]
  perm = jnp.asarray(settings.flip_perm)
  heat = heatmap_decode.flip_merge(heat[:b], heat[b:], perm)
  back = jnp.flip(tags[b:], axis=2)[..., perm, :]
  return {'heatmaps': heat, 'tags': jnp.concatenate([tags[:b], back], axis=-1)}


def split_outputs(config, outputs) -> dict:
  """outputs [..., C] -> {'heatmaps' [..., K], 'tags' [..., K * D]} (channel layout kept)."""
  k, d = config.dataset.num_joints, config.model.tag_dim
  return {'heatmaps': outputs[..., :k], 'tags': outputs[..., k:k + k * d]}


def encode(config, keypoints, image_hw) -> dict:
  """Ideal network outputs for people keypoints [P, K, 3] (input pixels, v > 0 = labelled) in an
  image of size image_hw: {'heatmaps' [h, w, K] (max over people), 'tags' [h, w, K * D]} numpy,
  h = H / stride. Person p's tag is p (every dimension) on the pixels where its Gaussian is the
  largest of that joint's; 0 elsewhere."""
  stride = config.dataset.heatmap_stride
  hw = (image_hw[0] // stride, image_hw[1] // stride)
  kp = np.asarray(keypoints, np.float32)
  per_person = heatmap_targets.render_heatmaps(
      jnp.asarray(kp[:, None]), hw, stride, config.targets.sigma)           # [P, h, w, K]
  heat, tags = heatmap_targets.person_index_maps(per_person, config.model.tag_dim)
  return {'heatmaps': heat, 'tags': tags}


def group(config, maps: dict):
  """{'heatmaps' [h, w, K], 'tags' [h, w, K, T]} of one image -> (people [N, K, 3] (u, v,
  score) in grid pixels, person scores [N]) by `grouping.group` with `config.grouping` (joint
  order: the paper's for K = 17, else 0..K-1)."""
  params = grouping.GroupingParams.from_config(config, np.shape(maps['heatmaps'])[-1])
  return grouping.group(maps['heatmaps'], maps['tags'], params)


def parse(config, heatmaps, tags):
  """The AE parser on the official layouts: heatmaps [K, H, W], tags [K, H, W] or [K, H, W, L]
  -> (people [N, K, 3] (x, y, score) in heatmap pixels, person scores [N])."""
  tags = np.asarray(tags, np.float32)
  if tags.ndim == 3:
    tags = tags[..., None]
  return group(config, {'heatmaps': np.moveaxis(np.asarray(heatmaps, np.float32), 0, -1),
                        'tags': np.moveaxis(tags, 0, 2)})


def decode(config, maps: dict, image_hw):
  """{'heatmaps' [h, w, K], 'tags' [h, w, K * D]} (the `encode` layout) -> (people [N, K, 3]
  (x, y, score) in input pixels, person scores [N])."""
  del image_hw    # the grid -> pixel map needs only the stride
  heat = np.asarray(maps['heatmaps'], np.float32)
  k = heat.shape[-1]
  tags = np.asarray(maps['tags'], np.float32)
  people, scores = group(config, {'heatmaps': heat,
                                  'tags': tags.reshape(tags.shape[:2] + (k, -1))})
  people = people.astype(np.float64)
  people[..., :2] = heatmap_decode.grid_to_input(people[..., :2], config.dataset.heatmap_stride)
  return people, scores


# --- official checkpoints: princeton-vl/pose-ae-train `PoseNet` ---------------------------------

_OFFICIAL_TOP = (
    (r'stem_conv1', 'pre.0'),
    (r'stem_conv2', 'pre.1'),
    (r'stem_conv3', 'pre.3'),
    (r'stem_conv4', 'pre.4'),
    (r'hourglass_(\d+)', r'features.\1.0'),
    (r'feature_conv1_(\d+)', r'features.\1.1'),
    (r'feature_conv2_(\d+)', r'features.\1.2'),
    (r'head_(\d+)', r'outs.\1.conv'),
    (r'merge_pred_(\d+)', r'merge_preds.\1.conv.conv'),
    (r'merge_feature_(\d+)', r'merge_features.\1.conv.conv'),
)


def _official_name(flat_key: tuple) -> str:
  collection, leaf = flat_key[0], flat_key[-1]
  modules = official.rename_top(list(flat_key[1:-1]), _OFFICIAL_TOP, 'Associative Embedding')
  return '.'.join(modules + [official.LEAVES[(collection, leaf)]])


def _matches(sd) -> bool:
  return official.has_heads(sd) and not any(k.startswith('hgs.') for k in sd)


def _infer_architecture(sd) -> dict:
  return official.hourglass_architecture(
      sd, 'ae', 'features.0.0.', 'conv.weight', batch_norm='pre.0.bn.weight' in sd,
      default_inner_increase=ae_hourglass.OFFICIAL_INNER_INCREASE)


def _build_official(arch, dtype=jnp.float32) -> ae_hourglass.AssociativeEmbeddingNet:
  return ae_hourglass.AssociativeEmbeddingNet(
      num_stacks=arch['num_stacks'], features=arch['features'], increase=arch['increase'],
      num_outputs=arch['num_outputs'], batch_norm=arch['batch_norm'], depth=arch['depth'],
      dtype=dtype, inner_increase=arch['inner_increase'], stem_features=arch['stem_features'])


OFFICIAL = official.OfficialFormat(
    matches=_matches, infer_architecture=_infer_architecture, build_model=_build_official,
    official_name=_official_name, owns=lambda variables: 'stem_conv1' in variables['params'],
    unused=lambda name, expected: False, padding=lambda sd: {},
    note='the official AE code reads channels [0:17] as heatmaps and [17:34] as tags (tag '
    'dimension 1); the released model has 68 outputs, the last 34 unused')


METHOD = base.Method(
    name='ae', multi_person=True, target_stride=4, build_model=build_model,
    input_multiple=base.hourglass_input_multiple, map_stride=base.heatmap_stride,
    normalize_images=base.unit_rgb,
    num_outputs=num_outputs, settings=settings, render_targets=render_targets, loss=loss,
    predict_maps=predict_maps, encode=encode, decode=decode, split_outputs=split_outputs,
    group=group, parse=parse, official=OFFICIAL)
