"""Training targets rendered on the device from padded keypoints (plain jnp, jit-friendly).

Convention 'continuous': a keypoint at input pixel x (pixel centres at integers) sits at
u = (x + 0.5) / stride - 0.5 on the heatmap grid; `hgjax.decode` inverts exactly this.
"""

import jax.numpy as jnp
import numpy as np


def to_grid(keypoints, stride: int):
  """Input-pixel (x, y, v) [..., 3] -> heatmap-grid (u, w, v) [..., 3]."""
  xy = (keypoints[..., :2] + 0.5) / stride - 0.5
  return jnp.concatenate([xy, keypoints[..., 2:]], axis=-1)


def render_heatmaps(keypoints, heatmap_size: tuple, stride: float, sigma: float,
                    radius: float | None = None):
  """Gaussian heatmaps, max over people.

  Args:
    keypoints: [B, P, K, 3] float32, (x, y, v) in input pixels; v > 0 marks a labelled joint.
    heatmap_size: (h, w) of the grid.
    stride: input pixels per grid pixel.
    sigma: Gaussian std in grid pixels.
    radius: half-width of the square window in grid pixels; None = 3 sigma (the Stacked
      Hourglass / AE reference code); HigherHRNet's official window is 3 sigma + 1.
  Returns:
    heatmaps [B, h, w, K] float32 in [0, 1]: exp(-d^2 / 2 sigma^2) at the continuous keypoint
    position, cut to zero outside the (2 radius + 1)-wide square window (so 'foreground' pixels
    are well defined). Joints with v == 0 or a centre outside the grid render nothing.
  """
  h, w = heatmap_size
  g = to_grid(keypoints, stride)
  u, v, vis = g[..., 0], g[..., 1], g[..., 2]                        # [B, P, K]
  inside = (vis > 0) & (u >= -0.5) & (u <= w - 0.5) & (v >= -0.5) & (v <= h - 0.5)
  dx = jnp.arange(w, dtype=jnp.float32) - u[..., None]               # [B, P, K, w]
  dy = jnp.arange(h, dtype=jnp.float32) - v[..., None]               # [B, P, K, h]
  radius = 3.0 * sigma if radius is None else radius
  gx = jnp.where(jnp.abs(dx) <= radius, jnp.exp(-dx**2 / (2 * sigma**2)), 0.0)
  gy = jnp.where(jnp.abs(dy) <= radius, jnp.exp(-dy**2 / (2 * sigma**2)), 0.0)
  gx = gx * inside[..., None]
  maps = jnp.einsum('bpkh,bpkw->bphwk', gy, gx)                       # separable Gaussian
  return maps.max(axis=1)


def person_index_maps(per_person, tag_dim: int):
  """Ideal AE outputs from each person's own heatmaps (numpy, for codecs).

  per_person: [P, h, w, K] heatmaps of one person each. Returns (heatmaps [h, w, K], the max
  over people; tags [h, w, K * tag_dim], joint-major: person p's tag is p, in every dimension,
  on the pixels where its heatmap is the largest of that joint's, 0 where no heatmap is > 0).
  """
  per_person = np.asarray(per_person, np.float32)
  if len(per_person) == 0:
    heat = np.zeros(per_person.shape[1:], np.float32)
    owner = np.zeros(per_person.shape[1:], np.int64)
  else:
    heat, owner = per_person.max(axis=0), per_person.argmax(axis=0)
  tags = np.where(heat > 0, owner, 0).astype(np.float32)
  return heat, np.repeat(tags[..., None], tag_dim, axis=-1).reshape(heat.shape[:2] + (-1,))


def joint_weights(keypoints):
  """Loss weight per joint: 1 where labelled (v > 0), else 0. keypoints [B, P, K, 3] -> [B, K].

  A labelled joint outside the crop keeps weight 1: its target is an empty map, which is
  what the network should predict there.
  """
  return (keypoints[..., 2] > 0).any(axis=1).astype(jnp.float32)
