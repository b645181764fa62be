"""hgjax.nn.layers: the transposed convolution against a direct scatter in float64 numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgjax.nn import layers


def scatter_transpose_conv(x, w, padding):
  """PyTorch ConvTranspose2d(stride 2) by its definition: every input pixel (i, j) adds
  x[i, j] @ w[ty, tx] at output (2i + ty - padding, 2j + tx - padding); the output is 2H x 2W.
  x: [B, H, W, C_in], w: [k, k, C_in, C_out] (float64 numpy) -> [B, 2H, 2W, C_out]."""
  b, h, wd, _ = x.shape
  k = w.shape[0]
  out = np.zeros((b, 2 * h, 2 * wd, w.shape[-1]))
  for i in range(h):
    for j in range(wd):
      for ty in range(k):
        for tx in range(k):
          oy, ox = 2 * i + ty - padding, 2 * j + tx - padding
          if 0 <= oy < 2 * h and 0 <= ox < 2 * wd:
            out[:, oy, ox] += x[:, i, j] @ w[ty, tx]
  return out


@pytest.mark.parametrize('kernel,padding', [(4, 1), (3, 1), (2, 0)])
def test_conv_transpose_2x_equals_the_definition(kernel, padding):
  rng = np.random.default_rng(kernel)
  x = rng.normal(size=(2, 5, 7, 3))
  w = rng.normal(size=(kernel, kernel, 3, 4))
  got = layers.conv_transpose_2x(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32),
                                 padding)
  want = scatter_transpose_conv(x, w, padding)
  assert got.shape == want.shape
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-5 * np.abs(want).max())
  # The gradient flows to every tap of the kernel through the phase decomposition.
  g = jax.grad(lambda w: layers.conv_transpose_2x(jnp.asarray(x, jnp.float32), w,
                                                  padding).sum())(jnp.asarray(w, jnp.float32))
  # d(sum out)/dw[ty, tx] = sum of x over the input pixels whose output lands inside.
  for ty in range(kernel):
    for tx in range(kernel):
      rows = [i for i in range(5) if 0 <= 2 * i + ty - padding < 10]
      cols = [j for j in range(7) if 0 <= 2 * j + tx - padding < 14]
      want_g = x[:, rows][:, :, cols].sum(axis=(0, 1, 2))
      np.testing.assert_allclose(np.asarray(g[ty, tx]), np.repeat(want_g[:, None], 4, 1),
                                 rtol=1e-5, atol=1e-5)
