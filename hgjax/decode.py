"""Heatmap decoding on the device (jnp, jit-friendly): peaks, sub-pixel refinement, flip test.

Convention 'continuous' (the one `hgjax.targets` renders with): input pixel x (pixel centres at
integers) sits at u = (x + 0.5) / stride - 0.5 on the heatmap grid. Under it a horizontal image
flip x -> W - 1 - x is exactly the grid flip u -> w - 1 - u (w = W / stride), so flipped heatmaps
are reversed along the width axis with no one-pixel shift.

Grid coordinates are (u, v) = (column, row) in grid pixels, float32.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

REFINEMENTS = ('none', 'quarter', 'taylor', 'dark')


def _gather(flat, idx):
  """flat [B, K, n], idx [B, K] int -> [B, K]."""
  return jnp.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]


def _blur_matrix(n: int, sigma: float) -> np.ndarray:
  """[n, n] Gaussian smoothing along one axis with mirror (reflect-101) borders."""
  radius = max(1, int(np.ceil(3.0 * sigma)))
  taps = np.exp(-np.arange(-radius, radius + 1)**2 / (2.0 * sigma**2))
  taps /= taps.sum()
  # Row r of the padded identity is the one-hot of the source pixel that padded row r reads.
  onehot = np.pad(np.eye(n), ((radius, radius), (0, 0)), mode='reflect')
  m = sum(weight * onehot[t:t + n] for t, weight in enumerate(taps))
  return m.astype(np.float32)


def gaussian_blur(heatmaps, sigma: float, xp=jnp):
  """Separable Gaussian smoothing of heatmaps [..., h, w, K] (std `sigma` grid pixels); xp is
  jax.numpy (on the device) or numpy (on the host, e.g. grouping)."""
  h, w = heatmaps.shape[-3], heatmaps.shape[-2]
  by, bx = xp.asarray(_blur_matrix(h, sigma)), xp.asarray(_blur_matrix(w, sigma))
  out = xp.einsum('ij,...jwk->...iwk', by, heatmaps)
  return xp.einsum('ij,...hjk->...hik', bx, out)


# Jitted here so that eager callers (tests, scripts) do not dispatch op by op.
@functools.partial(jax.jit, static_argnames=('refine', 'blur_sigma'))
def heatmap_peaks(heatmaps, refine: str = 'quarter', blur_sigma: float = 1.0):
  """Location and value of each channel's maximum.

  Args:
    heatmaps: [B, h, w, K].
    refine: sub-pixel refinement of the integer argmax.
      'none': the argmax pixel.
      'quarter': shift 0.25 px per axis toward the larger of the two neighbours (Newell et al.'s
        hourglass code); no shift on an axis where the peak touches the border or the
        neighbours are equal.
      'taylor': one Newton step on the log heatmap with central differences over the 3x3
        neighbourhood (second-order Taylor expansion, as in DARK, Zhang et al. CVPR'20), exact
        for an untruncated Gaussian of any width; offsets clipped to +-0.5 px. Falls back to
        'quarter' where it is undefined: peak on the border, a non-positive value in the 3x3
        neighbourhood, or a log-Hessian that is not negative definite.
      'dark': 'taylor' on the heatmaps smoothed by a Gaussian of std `blur_sigma` (DARK's
        modulation step); peak and refinement come from the smoothed maps, robust to noise.
    blur_sigma: smoothing std in grid pixels for 'dark' (about the target sigma works best).
  Returns:
    coords [B, K, 2] float32 (u, v) in grid pixels, scores [B, K] (the heatmap value at the
    integer peak: the maximum, except for 'dark' where the peak is the smoothed maps').
  """
  if refine not in REFINEMENTS:
    raise ValueError(f'refine must be one of {REFINEMENTS}, got {refine!r}')
  b, h, w, k = heatmaps.shape
  heatmaps = heatmaps.astype(jnp.float32)
  flat_raw = jnp.moveaxis(heatmaps, -1, 1).reshape(b, k, h * w)
  if refine == 'dark':
    heatmaps = gaussian_blur(heatmaps, blur_sigma)
  flat = jnp.moveaxis(heatmaps, -1, 1).reshape(b, k, h * w)
  idx = jnp.argmax(flat, axis=-1)                                   # [B, K]
  scores = _gather(flat_raw, idx)
  col, row = idx % w, idx // w
  coords = jnp.stack([col, row], axis=-1).astype(jnp.float32)
  if refine == 'none':
    return coords, scores

  inner_x = (col > 0) & (col < w - 1)
  inner_y = (row > 0) & (row < h - 1)
  # The 3x3 neighbourhood in one gather; indices clipped so border peaks read valid (unused)
  # memory. n[..., 3 * (dr + 1) + (dc + 1)] is the value at (row + dr, col + dc).
  offsets = np.array([-1, 0, 1])
  rows = jnp.clip(row[..., None, None] + offsets[:, None], 0, h - 1)
  cols = jnp.clip(col[..., None, None] + offsets[None, :], 0, w - 1)
  n = jnp.take_along_axis(flat, (rows * w + cols).reshape(b, k, 9), axis=-1)
  left, right, up, down = n[..., 3], n[..., 5], n[..., 1], n[..., 7]
  # `where` instead of sign(): equal or NaN neighbours give no shift.
  quarter_x = jnp.where(right > left, 0.25, jnp.where(right < left, -0.25, 0.0))
  quarter_y = jnp.where(down > up, 0.25, jnp.where(down < up, -0.25, 0.0))
  quarter = jnp.stack([jnp.where(inner_x, quarter_x, 0.0),
                       jnp.where(inner_y, quarter_y, 0.0)], axis=-1)
  if refine == 'quarter':
    return coords + quarter, scores

  taylor, defined = taylor_step(n, jnp)
  ok = (defined & inner_x & inner_y)[..., None]
  return coords + jnp.where(ok, taylor, quarter), scores


def taylor_step(n, xp=jnp):
  """The 'taylor' sub-pixel step from a peak's 3x3 neighbourhood (also used by grouping).

  Args:
    n: [..., 9] heat values, n[..., 3 * (dr + 1) + (dc + 1)] at (row + dr, col + dc).
    xp: the array module, jax.numpy (on the device) or numpy (on the host).
  Returns:
    offsets [..., 2] (du, dv), clipped to +-0.5 px, and defined [...] bool: every value
    positive and the log-Hessian negative definite (elsewhere the offsets are meaningless).
  """
  positive = xp.all(n > 0, axis=-1)
  ln = xp.log(xp.maximum(n, 1e-30))
  gx, gy = 0.5 * (ln[..., 5] - ln[..., 3]), 0.5 * (ln[..., 7] - ln[..., 1])
  hxx = ln[..., 5] - 2 * ln[..., 4] + ln[..., 3]
  hyy = ln[..., 7] - 2 * ln[..., 4] + ln[..., 1]
  hxy = 0.25 * (ln[..., 8] - ln[..., 6] - ln[..., 2] + ln[..., 0])
  det = hxx * hyy - hxy**2
  definite = (hxx < 0) & (det > 0)
  safe_det = xp.where(definite, det, 1.0)
  # Newton step: offset = -H^-1 g with the 2x2 inverse written out.
  ox = -(hyy * gx - hxy * gy) / safe_det
  oy = -(hxx * gy - hxy * gx) / safe_det
  return xp.clip(xp.stack([ox, oy], axis=-1), -0.5, 0.5), positive & definite


def grid_to_input(coords, stride: float):
  """Grid (u, v) [..., 2] -> input pixels (x, y): x = (u + 0.5) * stride - 0.5."""
  return (coords + 0.5) * stride - 0.5


def input_to_grid(coords, stride: float):
  """Input pixels (x, y) [..., 2] -> grid (u, v): u = (x + 0.5) / stride - 0.5."""
  return (coords + 0.5) / stride - 0.5


@jax.jit
def flip_merge(heatmaps, flipped_heatmaps, flip_perm):
  """Flip-test merge: average the heatmaps with those of the horizontally flipped image.

  Args:
    heatmaps: [..., h, w, K] of the image.
    flipped_heatmaps: [..., h, w, K] of the image flipped left-right.
    flip_perm: [K] int, flip_perm[j] = mirror joint of j (`skeleton.flip_for(K)`).
  Returns:
    [..., h, w, K]: mean of `heatmaps` and the flipped-back, channel-swapped `flipped_heatmaps`.
  """
  back = jnp.flip(flipped_heatmaps, axis=-2)[..., jnp.asarray(flip_perm)]
  return 0.5 * (heatmaps + back)


def grid_to_image(coords, stride: float, inverse_affines):
  """Grid coordinates -> original image pixels through the inverse crop transforms.

  Args:
    coords: [B, K, 2] grid (u, v).
    stride: input pixels per grid pixel.
    inverse_affines: [B, 2, 3] crop -> original maps (`transforms.invert_affine` of each crop).
  Returns:
    [B, K, 2] (x, y) in original image pixels, 0-based.
  """
  xy = grid_to_input(coords, stride)
  a = jnp.asarray(inverse_affines, dtype=jnp.float32)
  return jnp.einsum('bij,bkj->bki', a[..., :2], xy) + a[:, None, :, 2]
