"""Stacked Hourglass network (Newell, Yang and Deng, ECCV 2016) in flax.linen, NHWC.

The architecture follows the paper and the official PyTorch release
(princeton-vl/pytorch_stacked_hourglass): pre-activation bottleneck residuals, a recursive
hourglass (max-pool down, nearest-neighbour up), a stem that reduces the resolution by 4,
per-stack feature layers and 1x1 heads, and merge layers feeding each stack's prediction
and features back into the next stack. Layers (and why 1x1 convolutions are `nn.Dense`) are in
`hgjax.nn.layers`.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from hgjax.nn.layers import Residual
from hgjax.nn.layers import batch_norm
from hgjax.nn.layers import conv_general_dilated
from hgjax.nn.layers import max_pool_2x2
from hgjax.nn.layers import upsample_2x


class Hourglass(nn.Module):
  """Recursive hourglass of `depth` levels at constant width.

  x: [B, H, W, C] with H, W divisible by 2**depth -> [B, H, W, C].
  """
  depth: int
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    res = functools.partial(Residual, self.features, dtype=self.dtype)
    up1 = res(name='up1')(x, train)
    low = res(name='low1')(max_pool_2x2(x), train)
    if self.depth > 1:
      low = Hourglass(self.depth - 1, self.features, dtype=self.dtype, name='low2')(low, train)
    else:
      low = res(name='low2')(low, train)
    low = res(name='low3')(low, train)
    return up1 + upsample_2x(low)


# Layer groups of one stack; stack i's are named f'{group}_{i}' at the top of the network.
STACK_GROUPS = ('hourglass', 'feature_res', 'feature_conv', 'feature_bn', 'head', 'merge_pred',
                'merge_feature')


def _stack_layers(x, train: bool, suffix: str, merge: bool, depth: int, features: int,
                  num_outputs: int, dtype):
  """One stack, its modules named f'{group}{suffix}' in the calling (compact) module.

  x: [B, h, w, features] -> (next stack's x, or None without `merge`;
  prediction [B, h, w, num_outputs] float32).
  """
  dense = functools.partial(nn.Dense, dtype=dtype)
  y = Hourglass(depth, features, dtype=dtype, name=f'hourglass{suffix}')(x, train)
  y = Residual(features, dtype=dtype, name=f'feature_res{suffix}')(y, train)
  y = dense(features, name=f'feature_conv{suffix}')(y)
  feature = nn.relu(batch_norm(train, dtype, f'feature_bn{suffix}')(y))
  # Heads in float32 so low-precision compute never reaches the loss.
  pred = nn.Dense(num_outputs, dtype=jnp.float32, name=f'head{suffix}')(feature)
  if not merge:
    return None, pred
  x = (x + dense(features, name=f'merge_pred{suffix}')(pred.astype(dtype))
       + dense(features, name=f'merge_feature{suffix}')(feature))
  return x, pred


class Stack(nn.Module):
  """One stack as a standalone module (children named like STACK_GROUPS), for `lax.scan`."""
  depth: int
  features: int
  num_outputs: int
  dtype: Any
  merge: bool

  @nn.compact
  def __call__(self, x, train: bool):
    return _stack_layers(x, train, '', self.merge, self.depth, self.features, self.num_outputs,
                         self.dtype)


class StackedHourglass(nn.Module):
  """The full network. images: [B, H, W, 3] float (normalised by the caller), H, W divisible
  by 4 * 2**depth. Returns heatmaps [B, num_stacks, H/4, W/4, num_outputs] float32, one
  prediction per stack (all are supervised).

  Parameters are per stack (`hourglass_0`, `head_0`, ...), as in the official code, but when
  applied, all stacks except the last run in one `lax.scan` over their stacked parameters:
  XLA compiles one stack instead of `num_stacks` (minutes less for 8 stacks, and gigabytes
  less compiler memory). With `remat_stacks`, the scan body is rematerialised in the backward
  pass: only each stack's input is kept, at the price of one more forward pass of the stacks
  (an 8-stack batch of 8 then trains in a few GiB).
  """
  num_stacks: int = 8
  features: int = 256
  num_outputs: int = 16
  depth: int = 4
  dtype: Any = jnp.float32
  # Width of the stem's residuals (the paper: 128; its 7x7 conv has half as many channels).
  stem_features: int = 128
  scan_stacks: bool = False
  remat_stacks: bool = False

  @nn.compact
  def __call__(self, images, train: bool):
    dt = self.dtype
    stem = self.stem_features
    x = images.astype(dt)
    x = nn.Conv(stem // 2, (7, 7), strides=(2, 2), padding=3, dtype=dt, name='stem_conv',
                conv_general_dilated=conv_general_dilated)(x)
    x = nn.relu(batch_norm(train, dt, 'stem_bn')(x))
    x = Residual(stem, dtype=dt, name='stem_res1')(x, train)
    x = max_pool_2x2(x)
    x = Residual(stem, dtype=dt, name='stem_res2')(x, train)
    x = Residual(self.features, dtype=dt, name='stem_res3')(x, train)
    layers = functools.partial(_stack_layers, depth=self.depth, features=self.features,
                               num_outputs=self.num_outputs, dtype=dt)
    if self.is_initializing() or not self.scan_stacks or self.num_stacks == 1:
      preds = []
      for i in range(self.num_stacks):
        x, pred = layers(x, train, f'_{i}', merge=i < self.num_stacks - 1)
        preds.append(pred)
      return jnp.stack(preds, axis=1).astype(jnp.float32)
    return self._scanned_stacks(x, train)

  def _scanned_stacks(self, x, train: bool):
    n = self.num_stacks
    variables = self.variables
    collections = [c for c in ('params', 'batch_stats') if c in variables]

    def stack_variables(i):
      return {c: {g: variables[c][f'{g}_{i}'] for g in STACK_GROUPS
                  if f'{g}_{i}' in variables[c]} for c in collections}

    update_stats = train and self.is_mutable_collection('batch_stats')
    stack = functools.partial(Stack, self.depth, self.features, self.num_outputs, self.dtype,
                              parent=None)

    def run(module, v, x):
      if update_stats:
        (x, pred), updates = module.apply(v, x, train, mutable=['batch_stats'])
        return x, (pred, updates['batch_stats'])
      x, pred = module.apply(v, x, train)
      return x, (pred, {})

    body = functools.partial(run, stack(merge=True))
    if self.remat_stacks:
      body = jax.checkpoint(body, policy=jax.checkpoint_policies.nothing_saveable,
                            prevent_cse=False)
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *[stack_variables(i) for i in range(n - 1)])
    x, (preds, stats) = lax.scan(lambda x, v: body(v, x), x, stacked)
    _, (last_pred, last_stats) = run(stack(merge=False), stack_variables(n - 1), x)
    if update_stats:
      for i in range(n - 1):
        for g, value in stats.items():
          self.put_variable('batch_stats', f'{g}_{i}', jax.tree.map(lambda a, i=i: a[i], value))
      for g, value in last_stats.items():
        self.put_variable('batch_stats', f'{g}_{n - 1}', value)
    preds = jnp.concatenate([preds, last_pred[None]], axis=0)
    return jnp.moveaxis(preds, 0, 1).astype(jnp.float32)
