"""Layers shared by the networks (flax.linen, NHWC): convolutions with a fast kernel gradient,
2x pooling and upsampling as reshapes, PyTorch-default BatchNorm, the pre-activation bottleneck
residual of the Stacked Hourglass and the conv-ReLU-BN block of the Associative Embedding code.

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
  """d(sum(g * conv(x, w)))/dw of a NHWC/HWIO convolution, as one matrix product per tap.

  x: [B, H, W, C_in]; g: [B, H_out, W_out, C_out]; padding: ((top, bottom), (left, right)).
  Returns [kh, kw, C_in, C_out] in float32 accumulation, cast to x's dtype.
  Tap (dy, dx) of the kernel gets view^T @ g, the (strided) view of the padded input it
  multiplies, [B*H_out*W_out, C_in], contracted with g over all output pixels. Per-tap products
  ran 1-4.5x faster than one product with the concatenated views (im2col, [B*H_out*W_out,
  kh*kw*C_in]) on the AMD host: 7.9 against 35.8 ms at [4, 64, 64, 32] -> 32, 94 against 108 ms
  at [4, 32, 32, 256] -> 256 (one shape of nine, [4, 16, 16, 128], 20 % slower), and need no
  k*k times larger buffer.
  """
  kh, kw, cin, cout = kernel_shape
  b, ho, wo, _ = g.shape
  sh, sw = strides
  # Without a data dependency on g, XLA:CPU may schedule the views in the forward pass and keep
  # them alive until the backward pass reaches this layer (an optimization_barrier does not
  # survive to its scheduler). Adding 0 * g[0] (not foldable: 0 * inf is nan) ties them to g; a
  # non-finite g makes the kernel gradient non-finite anyway.
  tie = (g.reshape(-1)[0] * 0).astype(x.dtype)
  xp = jnp.pad(x + tie, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  gm = g.reshape(b * ho * wo, cout)
  contract_rows = (((0,), (0,)), ((), ()))
  dw = [lax.dot_general(
            lax.slice(xp, (0, dy, dx, 0), (b, dy + sh * (ho - 1) + 1, dx + sw * (wo - 1) + 1, cin),
                      (1, sh, sw, 1)).reshape(b * ho * wo, cin),
            gm, contract_rows, preferred_element_type=jnp.float32)
        for dy in range(kh) for dx in range(kw)]
  return jnp.stack(dw).reshape(kh, kw, cin, cout).astype(x.dtype)


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


def batch_norm(train: bool, dtype: Any, name: str) -> nn.BatchNorm:
  """BatchNorm with PyTorch BatchNorm2d's defaults, inference mode unless `train`."""
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
    y = nn.relu(batch_norm(train, self.dtype, 'bn1')(x))
    y = dense(mid, name='conv1')(y)
    y = nn.relu(batch_norm(train, self.dtype, 'bn2')(y))
    y = nn.Conv(mid, (3, 3), padding=1, dtype=self.dtype, name='conv2',
                conv_general_dilated=conv_general_dilated)(y)
    y = nn.relu(batch_norm(train, self.dtype, 'bn3')(y))
    y = dense(self.features, name='conv3')(y)
    return y + skip


class ConvBlock(nn.Module):
  """The official `Conv`: k x k conv (+bias, 'same' padding) -> ReLU -> optional BatchNorm.

  x: [B, H, W, C_in] -> [B, H/strides, W/strides, features].
  """
  features: int
  kernel_size: int = 3
  strides: int = 1
  batch_norm: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    k = self.kernel_size
    x = nn.Conv(self.features, (k, k), strides=(self.strides, self.strides),
                padding=(k - 1) // 2, dtype=self.dtype, name='conv',
                conv_general_dilated=conv_general_dilated)(x)
    x = nn.relu(x)
    if self.batch_norm:
      x = batch_norm(train, self.dtype, 'bn')(x)
    return x


def _phase_taps(kernel_size: int, padding: int) -> tuple:
  """For a stride-2 transposed convolution: per output phase a (output row 2m + a), the kernel
  tap t that input row m + d reaches it through, as {d: t}. From out[o] = sum_i x[i] w[o + p - 2i]
  (PyTorch's ConvTranspose2d): t = 2m + a + p - 2i, so d = i - m = (a + p - t) / 2."""
  return tuple({(a + padding - t) // 2: t for t in range(kernel_size) if (a + padding - t) % 2 == 0}
               for a in (0, 1))


def conv_transpose_2x(x, kernel, padding: int):
  """PyTorch `ConvTranspose2d(stride=2, padding, output_padding=2 * padding + 2 - k)` (output
  exactly 2H x 2W), without bias, as one ordinary convolution of the input followed by a
  depth-to-space: each of the four output phases (row parity a, column parity b) is a small
  convolution of the undilated input with a subset of the kernel taps (`_phase_taps`); the
  phases' kernels are stacked along the output channels.

  x: [B, H, W, C_in]; kernel: [k, k, C_in, C_out], PyTorch's (C_in, C_out, k, k) weight
  transposed, unflipped. Returns [B, 2H, 2W, C_out].

  Written by hand because XLA:CPU's transposed convolution (a convolution of the 2x dilated
  input) computes on the inserted zeros and its kernel gradient is slow: 120 ms against 26 ms for
  the forward and backward pass at [4, 32, 32, 66] -> 32 channels on the AMD host (measured).
  """
  k, _, cin, cout = kernel.shape
  taps = _phase_taps(k, padding)
  lo = min(min(t) for t in taps)
  hi = max(max(t) for t in taps)
  zero = jnp.zeros((cin, cout), kernel.dtype)

  def tap(a, b, dy, dx):
    ty, tx = taps[a].get(dy), taps[b].get(dx)
    return zero if ty is None or tx is None else kernel[ty, tx]

  offsets = range(lo, hi + 1)
  # [kh, kw, C_in, C_out, 4 phases (a, b)] -> [kh, kw, C_in, C_out * 4]
  stacked = jnp.stack([jnp.stack([jnp.stack([tap(a, b, dy, dx) for a in (0, 1) for b in (0, 1)],
                                            axis=-1) for dx in offsets]) for dy in offsets])
  n = hi - lo + 1
  y = conv_general_dilated(x, stacked.reshape(n, n, cin, cout * 4), (1, 1),
                           ((-lo, hi), (-lo, hi)), dimension_numbers=_NHWC)
  bsz, h, w, _ = x.shape
  y = y.reshape(bsz, h, w, cout, 2, 2).transpose(0, 1, 4, 2, 5, 3)
  return y.reshape(bsz, 2 * h, 2 * w, cout)
