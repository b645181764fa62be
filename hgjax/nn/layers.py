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
