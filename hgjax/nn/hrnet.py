"""HRNet backbone (Sun et al., CVPR 2019) as HigherHRNet uses it (Cheng et al., CVPR 2020), in
flax.linen, NHWC; exact to the official `PoseHigherResolutionNet` backbone
(HRNet/HigherHRNet-Human-Pose-Estimation lib/models/pose_higher_hrnet.py; specification in
shared/docs/methods/higherhrnet.md section 1).

Stem and stage 1 are fixed (the official code ignores the config there): two 3x3 stride-2 conv-
BN-ReLU of 64 channels, then 4 Bottlenecks (64 -> 256). Stages 2.. have `len(widths[:s])`
branches (branch k at 1/(4 * 2^k) resolution), `stage_modules[i]` multi-resolution modules of
`stage_blocks[i]` BasicBlocks per branch, each followed by the fuse layers: from a lower
resolution a 1x1 conv + BN and nearest upsampling, from a higher one a chain of 3x3 stride-2
convs (BN, ReLU except after the last). The last module outputs only the 1/4 branch. Every conv
has no bias; BatchNorm eps 1e-5 (PyTorch defaults).

Module names follow the official state dict with '.' before a digit written '_' (`layer1_0`,
`stage2_0/branches_1_3`, `fuse_layers_0_1_0`), so the converter maps them with one rule.
1x1 convolutions are `nn.Dense` (same parameters, faster on XLA:CPU; see `layers`).
"""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from hgjax.nn.layers import batch_norm
from hgjax.nn.layers import conv_general_dilated

STEM_FEATURES = 64
LAYER1_PLANES = 64
LAYER1_BLOCKS = 4
BOTTLENECK_EXPANSION = 4


def conv3x3(features: int, stride: int, dtype, name: str) -> nn.Conv:
  """3x3 conv, padding 1, no bias (the official `conv3x3`)."""
  return nn.Conv(features, (3, 3), strides=(stride, stride), padding=1, use_bias=False,
                 dtype=dtype, name=name, conv_general_dilated=conv_general_dilated)


def upsample_nearest(x, factor: int):
  """Nearest-neighbour upsampling by an integer factor. x: [B, H, W, C] -> [B, fH, fW, C]."""
  if factor == 1:
    return x
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, factor, w, factor, c))
  return x.reshape(b, h * factor, w * factor, c)


class BasicBlock(nn.Module):
  """conv3x3 - BN - ReLU - conv3x3 - BN, + identity (or a 1x1 conv + BN when the width or the
  stride changes), ReLU. x: [B, H, W, C_in] -> [B, H / stride, W / stride, features]."""
  features: int
  stride: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    y = conv3x3(self.features, self.stride, self.dtype, 'conv1')(x)
    y = nn.relu(batch_norm(train, self.dtype, 'bn1')(y))
    y = conv3x3(self.features, 1, self.dtype, 'conv2')(y)
    y = batch_norm(train, self.dtype, 'bn2')(y)
    return nn.relu(y + _shortcut(x, self.features, self.stride, train, self.dtype))


class Bottleneck(nn.Module):
  """1x1 (planes) - BN - ReLU - 3x3 - BN - ReLU - 1x1 (4 planes) - BN, + shortcut, ReLU.
  x: [B, H, W, C_in] -> [B, H / stride, W / stride, 4 * planes]."""
  planes: int
  stride: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    dense = functools.partial(nn.Dense, use_bias=False, dtype=self.dtype)
    y = nn.relu(batch_norm(train, self.dtype, 'bn1')(dense(self.planes, name='conv1')(x)))
    y = conv3x3(self.planes, self.stride, self.dtype, 'conv2')(y)
    y = nn.relu(batch_norm(train, self.dtype, 'bn2')(y))
    out = BOTTLENECK_EXPANSION * self.planes
    y = batch_norm(train, self.dtype, 'bn3')(dense(out, name='conv3')(y))
    return nn.relu(y + _shortcut(x, out, self.stride, train, self.dtype))


def _shortcut(x, features: int, stride: int, train: bool, dtype):
  """The identity, or the official `downsample` (1x1 conv with the block's stride + BN),
  created in the calling block as `downsample_0` / `downsample_1`."""
  if stride == 1 and x.shape[-1] == features:
    return x
  if stride == 1:
    y = nn.Dense(features, use_bias=False, dtype=dtype, name='downsample_0')(x)
  else:
    y = nn.Conv(features, (1, 1), strides=(stride, stride), use_bias=False, dtype=dtype,
                name='downsample_0')(x)
  return batch_norm(train, dtype, 'downsample_1')(y)


class HighResolutionModule(nn.Module):
  """Parallel branches of BasicBlocks, then the fuse layers.

  xs: one map per branch, [B, H / 2^k, W / 2^k, widths[k]] -> the fused maps (all branches, or
  only branch 0 without `multi_scale_output`).
  """
  widths: tuple
  num_blocks: int
  multi_scale_output: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, xs, train: bool):
    n = len(self.widths)
    ys = []
    for k, x in enumerate(xs):
      for b in range(self.num_blocks):
        x = BasicBlock(self.widths[k], dtype=self.dtype, name=f'branches_{k}_{b}')(x, train)
      ys.append(x)
    outputs = []
    for i in range(n if self.multi_scale_output else 1):
      total = None
      for j in range(n):
        y = ys[j] if j == i else self._fuse(ys[j], i, j, train)
        total = y if total is None else total + y
      outputs.append(nn.relu(total))
    return outputs

  def _fuse(self, x, i: int, j: int, train: bool):
    """Branch j's map brought to branch i's resolution and width."""
    dt, name = self.dtype, f'fuse_layers_{i}_{j}'
    if j > i:
      x = nn.Dense(self.widths[i], use_bias=False, dtype=dt, name=f'{name}_0')(x)
      return upsample_nearest(batch_norm(train, dt, f'{name}_1')(x), 2 ** (j - i))
    for step in range(i - j):
      last = step == i - j - 1
      x = conv3x3(self.widths[i] if last else self.widths[j], 2, dt, f'{name}_{step}_0')(x)
      x = batch_norm(train, dt, f'{name}_{step}_1')(x)
      if not last:
        x = nn.relu(x)
    return x


class HRNet(nn.Module):
  """The backbone. images: [B, H, W, 3] (H, W multiples of 4 * 2^(len(widths) - 1)) ->
  [B, H/4, W/4, widths[0]], the fused highest-resolution map of the last module.

  widths: channels of the branches, (32, 64, 128, 256) for W32; stage s (s = 2, 3, ...) has
  the first s of them. stage_modules, stage_blocks: multi-resolution modules per stage and
  BasicBlocks per branch, (1, 4, 3) and (4, 4, 4) in the HigherHRNet configs.
  """
  widths: tuple = (32, 64, 128, 256)
  stage_modules: tuple = (1, 4, 3)
  stage_blocks: tuple = (4, 4, 4)
  # Bottlenecks of stage 1: 4 in the official code (which ignores its config there); fewer
  # only to make a CPU-sized network cheaper (the 256-channel stage 1 dominates at small sizes).
  stage1_blocks: int = LAYER1_BLOCKS
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images, train: bool):
    if not len(self.stage_modules) == len(self.stage_blocks) == len(self.widths) - 1:
      raise ValueError(f'HRNet: {len(self.widths)} widths need {len(self.widths) - 1} stages '
                       f'of modules and blocks, got {self.stage_modules} and {self.stage_blocks}')
    dt = self.dtype
    x = images.astype(dt)
    for i in (1, 2):
      x = conv3x3(STEM_FEATURES, 2, dt, f'conv{i}')(x)
      x = nn.relu(batch_norm(train, dt, f'bn{i}')(x))
    for b in range(self.stage1_blocks):
      x = Bottleneck(LAYER1_PLANES, dtype=dt, name=f'layer1_{b}')(x, train)
    ys = [x]
    previous = [x.shape[-1]]
    last_stage = len(self.stage_modules) + 1
    for stage in range(2, last_stage + 1):
      widths = tuple(self.widths[:stage])
      xs = self._transition(ys, previous, widths, stage - 1, train)
      for m in range(self.stage_modules[stage - 2]):
        final = stage == last_stage and m == self.stage_modules[stage - 2] - 1
        xs = HighResolutionModule(widths, self.stage_blocks[stage - 2],
                                  multi_scale_output=not final, dtype=dt,
                                  name=f'stage{stage}_{m}')(xs, train)
      ys, previous = xs, list(widths)
    return ys[0]

  def _transition(self, ys, previous, widths, index: int, train: bool):
    """The official `transition{index}`: existing branches keep their map (or a 3x3 conv-BN-ReLU
    when the width changes); each new branch is a chain of stride-2 3x3 conv-BN-ReLU from the
    last (lowest-resolution) map. As the official forward, every transition reads that last
    map."""
    dt, out = self.dtype, []
    for i, width in enumerate(widths):
      name = f'transition{index}_{i}'
      if i < len(previous):
        if width == previous[i]:
          out.append(ys[i])
          continue
        x = conv3x3(width, 1, dt, f'{name}_0')(ys[-1])
        out.append(nn.relu(batch_norm(train, dt, f'{name}_1')(x)))
        continue
      x = ys[-1]
      for step in range(i + 1 - len(previous)):
        last = step == i - len(previous)
        x = conv3x3(width if last else previous[-1], 2, dt, f'{name}_{step}_0')(x)
        x = nn.relu(batch_norm(train, dt, f'{name}_{step}_1')(x))
      out.append(x)
    return out
