"""Associative Embedding network (Newell, Huang and Deng, NeurIPS 2017) in flax.linen, NHWC.

The architecture is the one released by the authors (princeton-vl/pose-ae-train), not the
residual Stacked Hourglass: every block is a plain "Conv" = 3x3 conv (+bias), ReLU, then an
optional BatchNorm (ReLU *before* BatchNorm, the official order). The hourglass widens by
`increase` channels per level going down; the official `Hourglass` passes `increase` to the
outermost level only and the inner levels use their default of 128, so with C=256 and
increase=128 the widths are 256, 384, 512, 640, 768. `inner_increase` makes that explicit.

Which blocks have BatchNorm when `batch_norm=True` follows the official code: the stem convs and
the hourglass's `up1`, `low1` and innermost `low2`; never `low3`, the two 3x3 convs after each
hourglass, the heads or the merges. The released COCO model has no BatchNorm.

1x1 convolutions are `nn.Dense` over channels and pooling/upsampling are reshapes (faster on
XLA:CPU, same parameters), see `hgjax.nn.layers`.
"""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from hgjax.nn.layers import ConvBlock
from hgjax.nn.layers import max_pool_2x2
from hgjax.nn.layers import upsample_2x

# The official `Hourglass(n, f, bn, increase=128)` default, used by every inner level.
OFFICIAL_INNER_INCREASE = 128


class AEHourglass(nn.Module):
  """Recursive hourglass of plain 3x3 ConvBlocks, `depth` levels.

  This level widens from `features` to `features + increase` in `low1`; the inner levels
  widen by `inner_increase` each. `low3` (back to `features`) never has BatchNorm.
  x: [B, H, W, features] with H, W divisible by 2**depth -> [B, H, W, features].
  """
  depth: int
  features: int
  increase: int
  inner_increase: int = OFFICIAL_INNER_INCREASE
  batch_norm: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    block = functools.partial(ConvBlock, dtype=self.dtype)
    wide = self.features + self.increase
    up1 = block(self.features, batch_norm=self.batch_norm, name='up1')(x, train)
    low = block(wide, batch_norm=self.batch_norm, name='low1')(max_pool_2x2(x), train)
    if self.depth > 1:
      low = AEHourglass(self.depth - 1, wide, self.inner_increase, self.inner_increase,
                        self.batch_norm, dtype=self.dtype, name='low2')(low, train)
    else:
      low = block(wide, batch_norm=self.batch_norm, name='low2')(low, train)
    low = block(self.features, batch_norm=False, name='low3')(low, train)
    return up1 + upsample_2x(low)


class AssociativeEmbeddingNet(nn.Module):
  """The full AE network.

  images: [B, H, W, 3] float (normalised by the caller; the official models take RGB / 255),
  H, W divisible by 4 * 2**depth. Returns [B, num_stacks, H/4, W/4, num_outputs] float32, one
  prediction per stack (all supervised); channels are the K heatmaps then the K * tag_dim tags.
  """
  num_stacks: int = 4
  features: int = 256
  increase: int = 128
  num_outputs: int = 34
  batch_norm: bool = False
  depth: int = 4
  dtype: Any = jnp.float32
  inner_increase: int = OFFICIAL_INNER_INCREASE
  # Stem widths: stem_features // 2, then stem_features (official: 64, 128).
  stem_features: int = 128

  @nn.compact
  def __call__(self, images, train: bool):
    dt = self.dtype
    block = functools.partial(ConvBlock, dtype=dt)
    bn = self.batch_norm
    x = images.astype(dt)
    stem = self.stem_features
    x = block(stem // 2, kernel_size=7, strides=2, batch_norm=bn, name='stem_conv1')(x, train)
    x = block(stem, batch_norm=bn, name='stem_conv2')(x, train)
    x = max_pool_2x2(x)
    x = block(stem, batch_norm=bn, name='stem_conv3')(x, train)
    x = block(self.features, batch_norm=bn, name='stem_conv4')(x, train)
    preds = []
    for i in range(self.num_stacks):
      y = AEHourglass(self.depth, self.features, self.increase, self.inner_increase, bn,
                      dtype=dt, name=f'hourglass_{i}')(x, train)
      y = block(self.features, name=f'feature_conv1_{i}')(y, train)
      feature = block(self.features, name=f'feature_conv2_{i}')(y, train)
      # Heads in float32 so low-precision compute never reaches the loss.
      pred = nn.Dense(self.num_outputs, dtype=jnp.float32, name=f'head_{i}')(feature)
      preds.append(pred)
      if i < self.num_stacks - 1:
        x = (x + nn.Dense(self.features, dtype=dt, name=f'merge_pred_{i}')(pred.astype(dt))
             + nn.Dense(self.features, dtype=dt, name=f'merge_feature_{i}')(feature))
    return jnp.stack(preds, axis=1).astype(jnp.float32)
