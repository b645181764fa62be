"""Stacked Hourglass network (Newell, Yang and Deng, ECCV 2016) in flax.linen, NHWC.

The architecture follows the paper and the official PyTorch release
(princeton-vl/pytorch_stacked_hourglass): pre-activation bottleneck residuals, a recursive
hourglass (max-pool down, nearest-neighbour up), a stem that reduces the resolution by 4,
per-stack feature layers and 1x1 heads, and merge layers feeding each stack's prediction
and features back into the next stack.

1x1 convolutions are written as `nn.Dense` over the channel axis: the parameters are the
same (kernel [C_in, C_out] + bias), but XLA:CPU runs a dense matmul several times faster than
a 1x1 convolution. Pooling and upsampling are reshapes for the same reason. The k x k
convolutions use `conv_general_dilated`, whose kernel gradient is one matrix product instead of
XLA's "convolution with an image-sized window" (which ran at ~5 GFLOP/s on XLA:CPU).
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ('NHWC', 'HWIO', 'NHWC')


def _conv_nhwc(x, w, strides, padding):
  return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_NHWC)


def kernel_gradient(x, g, kernel_shape, strides, padding):
  """d(sum(g * conv(x, w)))/dw of a NHWC/HWIO convolution, as one matrix product.

  x: [B, H, W, C_in]; g: [B, H_out, W_out, C_out]; padding: ((top, bottom), (left, right)).
  Returns [kh, kw, C_in, C_out] in float32 accumulation, cast to x's dtype.
  The k*k shifted (strided) views of the padded input are concatenated along channels
  (im2col, [B*H_out*W_out, kh*kw*C_in]) and contracted with g over all output pixels.
  """
  kh, kw, cin, cout = kernel_shape
  b, ho, wo, _ = g.shape
  sh, sw = strides
  # Without a data dependency on g, XLA:CPU schedules the (k*k times larger) im2col buffer in
  # the forward pass and keeps it alive until the backward pass reaches this layer (an
  # optimization_barrier does not survive to its scheduler). Adding 0 * g[0] (not foldable:
  # 0 * inf is nan) ties it to g; a non-finite g makes the kernel gradient non-finite anyway.
  tie = (g.reshape(-1)[0] * 0).astype(x.dtype)
  xp = jnp.pad(x + tie, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  taps = [lax.slice(xp, (0, dy, dx, 0), (b, dy + sh * (ho - 1) + 1, dx + sw * (wo - 1) + 1, cin),
                    (1, sh, sw, 1))
          for dy in range(kh) for dx in range(kw)]
  cols = jnp.concatenate(taps, axis=-1).reshape(b * ho * wo, kh * kw * cin)
  # g^T @ cols: transposing g (one small copy) keeps the big operand in its natural layout.
  dw = jnp.dot(g.reshape(b * ho * wo, cout).T, cols, preferred_element_type=jnp.float32)
  return dw.reshape(cout, kh, kw, cin).transpose(1, 2, 3, 0).astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_fast_grad(x, w, strides, padding):
  return _conv_nhwc(x, w, strides, padding)


def _conv_fast_grad_fwd(x, w, strides, padding):
  return _conv_nhwc(x, w, strides, padding), (x, w)


def _conv_fast_grad_bwd(strides, padding, residuals, g):
  x, w = residuals
  # The input gradient is XLA's own transposed convolution (fast); unused ones are removed.
  dx = jax.vjp(lambda x: _conv_nhwc(x, w, strides, padding), x)[1](g)[0]
  return dx, kernel_gradient(x, g, w.shape, strides, padding).astype(w.dtype)


_conv_fast_grad.defvjp(_conv_fast_grad_fwd, _conv_fast_grad_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, **kwargs):
  """`lax.conv_general_dilated` with a matmul kernel gradient (for `nn.Conv`).

  Same forward computation and signature; plain 2-D NHWC/HWIO convolutions without dilation
  or groups get the custom gradient, everything else falls through to lax.
  """
  plain = (lhs.ndim == 4 and feature_group_count == 1 and precision is None and not kwargs
           and all(d == 1 for d in (lhs_dilation or (1, 1)))
           and all(d == 1 for d in (rhs_dilation or (1, 1)))
           and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
           == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC))
  if not plain:
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    precision=precision, **kwargs)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
  padding = tuple(tuple(int(p) for p in pair) for pair in padding)
  return _conv_fast_grad(lhs, rhs, tuple(int(s) for s in window_strides), padding)


def max_pool_2x2(x):
  """2x2 max-pool with stride 2. x: [B, H, W, C] with even H, W -> [B, H/2, W/2, C]."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def upsample_2x(x):
  """Nearest-neighbour 2x upsampling. x: [B, H, W, C] -> [B, 2H, 2W, C]."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
  return x.reshape(b, 2 * h, 2 * w, c)


def _batch_norm(train: bool, dtype: Any, name: str):
  # PyTorch BatchNorm2d defaults: momentum 0.1 (flax: 0.9), eps 1e-5.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      dtype=dtype, name=name)


class Residual(nn.Module):
  """Pre-activation bottleneck: BN-ReLU-1x1(C/2)-BN-ReLU-3x3(C/2)-BN-ReLU-1x1(C) + skip.

  The skip is the identity, or a 1x1 conv when the input width differs from `features`.
  x: [B, H, W, C_in] -> [B, H, W, features].
  """
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    dense = functools.partial(nn.Dense, dtype=self.dtype)
    mid = self.features // 2
    skip = x if x.shape[-1] == self.features else dense(self.features, name='skip')(x)
    y = nn.relu(_batch_norm(train, self.dtype, 'bn1')(x))
    y = dense(mid, name='conv1')(y)
    y = nn.relu(_batch_norm(train, self.dtype, 'bn2')(y))
    y = nn.Conv(mid, (3, 3), padding=1, dtype=self.dtype, name='conv2',
                conv_general_dilated=conv_general_dilated)(y)
    y = nn.relu(_batch_norm(train, self.dtype, 'bn3')(y))
    y = dense(self.features, name='conv3')(y)
    return y + skip


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
  feature = nn.relu(_batch_norm(train, dtype, f'feature_bn{suffix}')(y))
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
    x = nn.relu(_batch_norm(train, dt, 'stem_bn')(x))
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
