"""HigherHRNet (Cheng et al., CVPR 2020): bottom-up pose with an HRNet backbone, associative
embedding tags at 1/4 and heatmaps at 1/4 and 1/2 of the input resolution.

Exact to the official code (HRNet/HigherHRNet-Human-Pose-Estimation; specification in
shared/docs/methods/higherhrnet.md) where marked, with these choices of ours:
- Input: RGB / 255 normalised with the ImageNet mean and std (the official `ToTensor` +
  `Normalize`).
- Network: `hgjax.nn.hrnet.HRNet` and the head below: a 1x1 conv to K heatmaps + K * D tags at
  1/4; per higher-resolution branch the features (concatenated with the previous outputs) go
  through a transposed conv (no bias) + BN + ReLU and `deconv_blocks` BasicBlocks, then a 1x1
  conv to K heatmaps. Outputs: a tuple ([B, H/4, W/4, C0], [B, H/2, W/2, K], ...).
- Targets: Gaussians (sigma in each resolution's pixels, the official window of 3 sigma + 1) at
  the continuous keypoint position of every resolution (the official code truncates the position
  to an integer pixel; hgjax's convention, `hgjax.targets`, keeps it); tags read at the
  nearest 1/4 pixel (`tag_loss.tag_targets`). The crowd/unlabelled mask comes at 1/4 and is
  upsampled (nearest) to the higher resolutions (the official code warps it per resolution).
- Loss: per resolution the official heatmap loss, the mean over joints and pixels of mask *
  (pred - target)^2, times `loss.heatmap_factors[r]`; AE push/pull on the 1/4 tags.
- Inference (official `get_multi_stage_outputs`): every output bilinearly resized to the highest
  resolution, heatmaps averaged, tags from the 1/4 output; flip test: the mirrored image's maps
  flipped back and joint-swapped, heatmaps averaged, tags appended (L = 2 D); with
  `eval.project_to_input` resized to the input size (the official PROJECT2IMAGE). Grouping: the
  official parser (`hgjax.heatmap_parser`).
"""

import dataclasses
import functools
import re
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hgjax import decode as heatmap_decode
from hgjax import heatmap_parser
from hgjax import losses
from hgjax import skeleton
from hgjax import tag_loss
from hgjax import targets as heatmap_targets
from hgjax.methods import base
from hgjax.methods import official
from hgjax.nn import hrnet
from hgjax.nn.layers import batch_norm
from hgjax.nn.layers import conv_transpose_2x

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Transposed-conv kernel size -> (padding, output padding), as the official `_get_deconv_cfg`.
DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}
# The official initialisation of the head (`init_weights`): N(0, 0.001) weights, zero biases,
# so that training starts from near-zero maps (lecun-normal heads started the synthetic run at
# a loss of 31, 100x the all-zeros loss, measured).
HEAD_INIT = nn.initializers.normal(0.001)


# --- network ------------------------------------------------------------------------------------

class Deconv(nn.Module):
  """PyTorch `ConvTranspose2d(stride=2, bias=False)` with the official padding of its kernel
  size: [B, H, W, C_in] -> [B, 2H, 2W, features]. kernel [k, k, C_in, features] (PyTorch
  (in, out, k, k) transposed), applied as `layers.conv_transpose_2x`."""
  features: int
  kernel_size: int = 4
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    pad, out_pad = DECONV_PADDING[k]
    if 2 * pad + 2 - k != out_pad:
      raise ValueError(f'Deconv: kernel {k} with padding {pad}, output padding {out_pad} does '
                       'not double the resolution')
    kernel = self.param('kernel', HEAD_INIT,
                        (k, k, x.shape[-1], self.features), jnp.float32)
    return conv_transpose_2x(x.astype(self.dtype), kernel.astype(self.dtype), pad)


class HigherResolutionHead(nn.Module):
  """features [B, h, w, C] (the backbone's 1/4 map) -> (out0 [B, h, w, num_outputs] float32,
  then [B, 2^r h, 2^r w, num_joints] float32 for each higher-resolution branch r)."""
  num_joints: int
  num_outputs: int
  deconv_features: tuple = (32,)
  deconv_kernel: int = 4
  deconv_blocks: int = 4
  cat_output: tuple = (True,)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    dt = self.dtype
    # Heads in float32 (float64 in a float64 model) so low precision never reaches the loss.
    head_dt = jnp.promote_types(dt, jnp.float32)
    y = nn.Dense(self.num_outputs, dtype=head_dt, kernel_init=HEAD_INIT,
                 name='final_layers_0')(x)
    outputs = [y]
    for i, width in enumerate(self.deconv_features):
      if self.cat_output[i]:
        x = jnp.concatenate([x, y.astype(x.dtype)], axis=-1)
      x = Deconv(width, self.deconv_kernel, dtype=dt, name=f'deconv_layers_{i}_0_0')(x)
      x = nn.relu(batch_norm(train, dt, f'deconv_layers_{i}_0_1')(x))
      for b in range(self.deconv_blocks):
        x = hrnet.BasicBlock(width, dtype=dt, name=f'deconv_layers_{i}_{b + 1}_0')(x, train)
      y = nn.Dense(self.num_joints, dtype=head_dt, kernel_init=HEAD_INIT,
                   name=f'final_layers_{i + 1}')(x)
      outputs.append(y)
    return tuple(o.astype(head_dt) for o in outputs)


class HigherHRNet(nn.Module):
  """images float32 [B, H, W, 3] (ImageNet-normalised; H, W multiples of 32 for four
  branches) -> the head's outputs (see `HigherResolutionHead`)."""
  num_joints: int = 17
  num_outputs: int = 34
  widths: tuple = (32, 64, 128, 256)
  stage_modules: tuple = (1, 4, 3)
  stage_blocks: tuple = (4, 4, 4)
  stage1_blocks: int = 4
  deconv_features: tuple = (32,)
  deconv_kernel: int = 4
  deconv_blocks: int = 4
  cat_output: tuple = (True,)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images, train: bool):
    x = hrnet.HRNet(self.widths, self.stage_modules, self.stage_blocks, self.stage1_blocks,
                    dtype=self.dtype, name='backbone')(images, train)
    return HigherResolutionHead(self.num_joints, self.num_outputs, self.deconv_features,
                                self.deconv_kernel, self.deconv_blocks, self.cat_output,
                                dtype=self.dtype, name='head')(x, train)


def build_model(config) -> HigherHRNet:
  """The HigherHRNet of `config.model` (the architecture keys of `_infer_architecture`)."""
  arch = {**config.model.to_dict(), 'num_joints': config.dataset.num_joints}
  return _build_official(arch, base.compute_dtype(config))


def input_multiple(config) -> int:
  """The stride-4 stem and the 2x downsampling of every further branch."""
  return config.dataset.heatmap_stride * 2 ** (len(config.model.hrnet_widths) - 1)


def map_stride(config) -> int:
  if config.eval.project_to_input:
    return 1
  return config.dataset.heatmap_stride // 2 ** len(config.model.deconv_features)


def normalize_images(images):
  """uint8 [B, H, W, 3] RGB -> float32 (x / 255 - ImageNet mean) / ImageNet std."""
  x = images.astype(jnp.float32) / 255.0
  return (x - jnp.asarray(IMAGENET_MEAN, jnp.float32)) / jnp.asarray(IMAGENET_STD, jnp.float32)


def num_outputs(config) -> int:
  return config.dataset.num_joints * (1 + config.model.tag_dim)


# --- training -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
  """The static (hashable) values of a config that the jitted HigherHRNet functions read."""
  num_joints: int
  heatmap_size: int             # the 1/4 grid
  stride: int                   # 4
  num_higher: int               # higher-resolution branches (1 in the paper)
  sigma: float
  foreground_weight: float
  heatmap_factors: tuple        # one per resolution
  tag_dim: int
  push_weight: float
  pull_weight: float
  push_form: str
  push_margin: float
  flip_perm: tuple | None
  project_to_input: bool


def settings(config) -> Settings:
  d, lo = config.dataset, config.loss
  num_higher = len(config.model.deconv_features)
  factors = tuple(float(f) for f in lo.heatmap_factors)
  if len(factors) != num_higher + 1:
    raise ValueError(f'config.loss.heatmap_factors={lo.heatmap_factors!r} needs one factor per '
                     f'output resolution ({num_higher + 1}: config.model.deconv_features='
                     f'{config.model.deconv_features!r})')
  return Settings(num_joints=d.num_joints, heatmap_size=d.image_size // d.heatmap_stride,
                  stride=d.heatmap_stride, num_higher=num_higher, sigma=config.targets.sigma,
                  foreground_weight=lo.foreground_weight, heatmap_factors=factors,
                  tag_dim=config.model.tag_dim, push_weight=lo.push_weight,
                  pull_weight=lo.pull_weight, push_form=lo.push_form,
                  push_margin=lo.push_margin, flip_perm=base.flip_perm(config),
                  project_to_input=config.eval.project_to_input)


def _upsample_nearest(mask, factor: int):
  """mask [B, h, w] -> [B, factor h, factor w]."""
  return hrnet.upsample_nearest(mask[..., None], factor)[..., 0]


def render_targets(batch, s: Settings) -> dict:
  """batch {'keypoints' [B, P, K, 3] input pixels, optional 'mask' [B, h, w] at 1/4} ->
  {'heatmaps_{r}' [B, 2^r h, 2^r h, K], 'mask_{r}' [B, 2^r h, 2^r h] for each resolution r,
  'tag_index', 'tag_valid' [B, P, K] at 1/4}."""
  kp = batch['keypoints']
  h = s.heatmap_size
  mask = batch['mask'] if 'mask' in batch else jnp.ones(kp.shape[:1] + (h, h), jnp.float32)
  out = {}
  for r in range(s.num_higher + 1):
    size = h * 2 ** r
    out[f'heatmaps_{r}'] = heatmap_targets.render_heatmaps(
        kp, (size, size), s.stride / 2 ** r, s.sigma, radius=3.0 * s.sigma + 1.0)
    out[f'mask_{r}'] = _upsample_nearest(mask, 2 ** r)
  out['tag_index'], out['tag_valid'] = tag_loss.tag_targets(kp, (h, h), s.stride)
  return out


@functools.partial(jax.jit, static_argnames=('s',))
def loss(outputs, targets: dict, s: Settings):
  """outputs (out0 [B, h, w, C0], [B, 2h, 2w, C1], ...) -> (total, terms): total = sum over
  resolutions r of heatmap_factors[r] * the batch mean of the masked heatmap MSE + push_weight *
  push + pull_weight * pull (1/4 tags); terms 'heatmap_mse_{r}', 'push', 'pull'."""
  k = s.num_joints
  total, terms = 0.0, {}
  for r, out in enumerate(outputs):
    weight = jnp.broadcast_to(targets[f'mask_{r}'][..., None], targets[f'heatmaps_{r}'].shape)
    mse = losses.heatmap_mse(out[:, None, ..., :k], targets[f'heatmaps_{r}'], weight,
                             s.foreground_weight)[:, 0].mean()
    terms[f'heatmap_mse_{r}'] = mse
    total = total + s.heatmap_factors[r] * mse
  out0 = outputs[0]
  tags = out0[..., k:k + k * s.tag_dim]
  tags = tags.reshape(tags.shape[:-1] + (k, s.tag_dim))
  person_tags = tag_loss.gather_tags(tags, targets['tag_index'])
  push, pull = tag_loss.push_pull(person_tags, targets['tag_valid'], form=s.push_form,
                                  margin=s.push_margin)
  terms.update(push=push.mean(), pull=pull.mean())
  total = total + s.push_weight * push.mean() + s.pull_weight * pull.mean()
  return total, terms


# --- inference ----------------------------------------------------------------------------------

def _resize(x, hw):
  """[B, h, w, C] -> [B, H, W, C], bilinear with half-pixel centres (PyTorch
  `interpolate(mode='bilinear', align_corners=False)` when upsampling)."""
  if x.shape[1:3] == tuple(hw):
    return x
  return jax.image.resize(x, (x.shape[0],) + tuple(hw) + (x.shape[-1],), 'bilinear')


def merge_outputs(outputs, num_joints: int, tag_dim: int, out_hw=None):
  """The official per-scale merge: every output resized to the highest resolution (then to
  out_hw if given), heatmaps averaged over the outputs, tags from the first.
  outputs: ([B, h, w, C0], [B, 2h, 2w, C1], ...) -> (heatmaps [B, H, W, K], tags
  [B, H, W, K, D])."""
  k = num_joints
  hw = outputs[-1].shape[1:3]
  resized = [_resize(o, hw) for o in outputs]
  heat = sum(o[..., :k] for o in resized) / len(resized)
  tags = resized[0][..., k:k + k * tag_dim]
  if out_hw is not None:
    heat, tags = _resize(heat, out_hw), _resize(tags, out_hw)
  return heat, tags.reshape(tags.shape[:-1] + (k, tag_dim))


def predict_maps(variables, images, *, model, settings: Settings) -> dict:
  """images uint8 [B, H, W, 3] -> {'heatmaps' [B, h, w, K], 'tags' [B, h, w, K, T]} at the
  highest output resolution (or the input's with `project_to_input`); T = tag_dim, 2 tag_dim
  with the flip test."""
  x = normalize_images(images)
  b = images.shape[0]
  if settings.flip_perm is not None:
    x = jnp.concatenate([x, x[:, :, ::-1]], axis=0)
  outputs = model.apply(variables, x, train=False)
  out_hw = images.shape[1:3] if settings.project_to_input else None
  heat, tags = merge_outputs(outputs, settings.num_joints, settings.tag_dim, out_hw)
  if settings.flip_perm is None:
    return {'heatmaps': heat, 'tags': tags}
  perm = jnp.asarray(settings.flip_perm)
  heat = 0.5 * (heat[:b] + jnp.flip(heat[b:], axis=2)[..., perm])
  back = jnp.flip(tags[b:], axis=2)[..., perm, :]
  return {'heatmaps': heat, 'tags': jnp.concatenate([tags[:b], back], axis=-1)}


def parser_params(config, num_joints: int) -> heatmap_parser.ParserParams:
  """The parser settings of `config.grouping` for maps of `num_joints` joints."""
  g = config.grouping
  return heatmap_parser.ParserParams(
      detection_threshold=g.detection_threshold, tag_threshold=g.tag_threshold,
      max_num_people=g.top_k, nms_kernel=g.nms_kernel, adjust=config.eval.refine == 'quarter',
      refine=g.refine, joint_order=skeleton.grouping_order(num_joints))


def parse(config, heatmaps, tags):
  """The official parser: heatmaps [K, H, W], tags [K, H, W] or [K, H, W, L] -> (people
  [P, K, 3 + L] (x, y, score, tags) with pixel centres at i + 0.5, scores [P]), official order."""
  heatmaps = np.asarray(heatmaps, np.float32)
  return heatmap_parser.parse(heatmaps, np.asarray(tags, np.float32) * config.grouping.tag_scale,
                              parser_params(config, heatmaps.shape[0]))


def group(config, maps: dict):
  """{'heatmaps' [h, w, K], 'tags' [h, w, K, T]} -> (people [N, K, 3] (u, v, score) in grid
  pixels (centres at integers), scores [N]), best first, at most config.grouping.max_people."""
  heat = np.moveaxis(np.asarray(maps['heatmaps'], np.float32), -1, 0)
  tags = np.moveaxis(np.asarray(maps['tags'], np.float32), 2, 0)
  people, scores = parse(config, heat, tags)
  people = people[..., :3].copy()
  people[..., :2] -= 0.5
  best = np.argsort(-scores, kind='stable')[:config.grouping.max_people]
  return people[best], scores[best]


def split_outputs(config, outputs) -> dict:
  """(out0 [..., h, w, C0], out1, ...) -> {'heatmaps' [..., K], 'tags' [..., K * D] (1/4),
  'heatmaps_x2' (1/2), 'heatmaps_x4', ...}."""
  k, d = config.dataset.num_joints, config.model.tag_dim
  out = {'heatmaps': outputs[0][..., :k], 'tags': outputs[0][..., k:k + k * d]}
  for r, o in enumerate(outputs[1:], start=1):
    out[f'heatmaps_x{2 ** r}'] = o[..., :k]
  return out


def encode(config, keypoints, image_hw) -> dict:
  """Ideal outputs for people keypoints [P, K, 3] (input pixels) in an image of size image_hw,
  named as `split_outputs`: heatmaps at every resolution (max over people), tags at 1/4 (person
  p's tag is p on the pixels where its Gaussian is the largest of that joint's, else 0)."""
  stride = config.dataset.heatmap_stride
  sigma = config.targets.sigma
  kp = np.asarray(keypoints, np.float32)
  out = {}
  for r in range(len(config.model.deconv_features) + 1):
    hw = (image_hw[0] * 2 ** r // stride, image_hw[1] * 2 ** r // stride)
    per_person = heatmap_targets.render_heatmaps(
        jnp.asarray(kp[:, None]), hw, stride / 2 ** r, sigma, radius=3.0 * sigma + 1.0)
    heat, tags = heatmap_targets.person_index_maps(per_person, config.model.tag_dim)
    if r == 0:
      out['heatmaps'], out['tags'] = heat, tags
    else:
      out[f'heatmaps_x{2 ** r}'] = heat
  return out


def decode(config, maps: dict, image_hw):
  """Maps named as `encode` -> (people [N, K, 3] (x, y, score) in input pixels, scores [N]):
  merged as at inference (no flip test), parsed, mapped to input pixels."""
  k = config.dataset.num_joints
  stages = [np.concatenate([maps['heatmaps'], maps['tags']], axis=-1)]
  stages += [maps[f'heatmaps_x{2 ** r}'] for r in range(1, len(config.model.deconv_features) + 1)]
  out_hw = tuple(image_hw) if config.eval.project_to_input else None
  heat, tags = merge_outputs([jnp.asarray(s, jnp.float32)[None] for s in stages], k,
                             config.model.tag_dim, out_hw)
  people, scores = group(config, {'heatmaps': np.asarray(heat[0]), 'tags': np.asarray(tags[0])})
  people = people.astype(np.float64)
  people[..., :2] = heatmap_decode.grid_to_input(people[..., :2], map_stride(config))
  return people, scores


# --- official checkpoints: HRNet/HigherHRNet-Human-Pose-Estimation `PoseHigherResolutionNet`,
# and MMPose 0.x (`backbone.` / `keypoint_head.` prefixes) -----------------------------------------

_MMPOSE_PREFIXES = ('backbone.', 'keypoint_head.')


def _canonical(sd) -> dict:
  """MMPose 0.x names without their `backbone.` / `keypoint_head.` prefixes."""
  if sd and all(name.startswith(_MMPOSE_PREFIXES) for name in sd):
    return {name.split('.', 1)[1]: value for name, value in sd.items()}
  return dict(sd)


def _matches(sd) -> bool:
  return 'final_layers.0.weight' in sd and any(name.startswith('stage2.') for name in sd)


def _count(sd, pattern: str, start: int = 0) -> int:
  """How many consecutive i >= start make `pattern.format(i)` a tensor name."""
  i = start
  while pattern.format(i) in sd:
    i += 1
  return i - start


def _infer_architecture(sd) -> dict:
  """{'kind': 'higherhrnet', 'hrnet_widths', 'hrnet_modules', 'hrnet_blocks',
  'hrnet_stage1_blocks', 'deconv_features', 'deconv_kernel', 'deconv_blocks',
  'deconv_cat_output', 'num_outputs', 'num_joints'} from tensor names and shapes."""
  shape = official.shape_of
  stages = 1
  while f'stage{stages + 1}.0.branches.0.0.conv1.weight' in sd:
    stages += 1
  if stages < 2:
    raise ValueError("missing tensor 'stage2.0.branches.0.0.conv1.weight' (needed to infer the "
                     'HRNet stages)')
  widths = tuple(shape(sd, f'stage{stages}.0.branches.{k}.0.conv1.weight', 'branch widths')[0]
                 for k in range(stages))
  modules = tuple(_count(sd, f'stage{s}.{{}}.branches.0.0.conv1.weight')
                  for s in range(2, stages + 1))
  blocks = tuple(_count(sd, f'stage{s}.0.branches.0.{{}}.conv1.weight')
                 for s in range(2, stages + 1))
  num_deconvs = _count(sd, 'deconv_layers.{}.0.0.weight')
  deconv = [shape(sd, f'deconv_layers.{i}.0.0.weight', 'deconvs') for i in range(num_deconvs)]
  num_outputs = shape(sd, 'final_layers.0.weight', 'number of outputs')[0]
  joints = (shape(sd, 'final_layers.1.weight', 'number of joints')[0] if num_deconvs
            else num_outputs // 2)
  previous = [widths[0]] + [d[1] for d in deconv[:-1]]
  return {'kind': 'higherhrnet', 'hrnet_widths': widths, 'hrnet_modules': modules,
          'hrnet_blocks': blocks, 'hrnet_stage1_blocks': _count(sd, 'layer1.{}.conv1.weight'),
          'deconv_features': tuple(d[1] for d in deconv),
          'deconv_kernel': deconv[0][2] if deconv else 4,
          'deconv_blocks': _count(sd, 'deconv_layers.0.{}.0.conv1.weight', start=1),
          'deconv_cat_output': tuple(d[0] != p for d, p in zip(deconv, previous, strict=True)),
          'num_outputs': num_outputs, 'num_joints': joints}


def _build_official(arch, dtype=jnp.float32) -> HigherHRNet:
  return HigherHRNet(
      num_joints=arch['num_joints'], num_outputs=arch['num_outputs'],
      widths=tuple(arch['hrnet_widths']), stage_modules=tuple(arch['hrnet_modules']),
      stage_blocks=tuple(arch['hrnet_blocks']), stage1_blocks=arch['hrnet_stage1_blocks'],
      deconv_features=tuple(arch['deconv_features']),
      deconv_kernel=arch['deconv_kernel'], deconv_blocks=arch['deconv_blocks'],
      cat_output=tuple(arch['deconv_cat_output']), dtype=dtype)


def _official_name(flat_key: tuple) -> str:
  """('params', 'backbone'|'head', 'stage2_0', 'branches_1_3', 'conv1', 'kernel') ->
  'stage2.0.branches.1.3.conv1.weight': '_' before a digit is '.'."""
  collection, leaf = flat_key[0], flat_key[-1]
  modules = [re.sub(r'_(?=\d)', '.', m) for m in flat_key[2:-1]]
  return '.'.join(modules + [official.LEAVES[(collection, leaf)]])


OFFICIAL = official.OfficialFormat(
    matches=_matches, infer_architecture=_infer_architecture, build_model=_build_official,
    official_name=_official_name,
    owns=lambda variables: {'backbone', 'head'} <= set(variables['params']),
    unused=lambda name, expected: False, padding=lambda sd: {},
    note='outputs: 1/4 resolution K heatmaps + K tags, 1/2 resolution K heatmaps; inputs RGB '
    '/ 255 normalised with the ImageNet mean and std',
    canonical=_canonical,
    probe_size=lambda arch: 4 * 2 ** (len(arch['hrnet_widths']) - 1),
    transposed=lambda name: re.fullmatch(r'deconv_layers\.\d+\.0\.0\.weight', name) is not None)


METHOD = base.Method(
    name='higherhrnet', multi_person=True, target_stride=4, build_model=build_model,
    input_multiple=input_multiple, map_stride=map_stride, normalize_images=normalize_images,
    num_outputs=num_outputs, settings=settings, render_targets=render_targets, loss=loss,
    predict_maps=predict_maps, encode=encode, decode=decode, split_outputs=split_outputs,
    group=group, parse=parse, official=OFFICIAL)
