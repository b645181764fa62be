"""Associative Embedding tag loss (Newell, Huang and Deng, NeurIPS 2017): push and pull.

Everything runs on the device inside the jitted train step, vectorised over images, people and
joints with masks (no Python loops over people, no data-dependent shapes).

Tag maps are [B, h, w, K, D]: dimension d of joint k's tag (D = tag_dim, 1 in the paper); how
a network's channels hold them is the method's business (`hgjax.methods.ae.split_tags`).

Tag targets: each labelled joint (v > 0) of person p reads the tag at the nearest grid pixel of
its continuous grid position u = (x + 0.5) / stride - 0.5, i.e. pixel round(u); joints whose
pixel is outside the grid are not used.

Normalisation (the authors' pose-ae-train code, `singleTagLoss`):
  reference tag of person n:  h_n = mean over its used joints of the joint tags;
  pull = mean over people n of [mean over its used joints and tag dims of (tag - h_n)^2];
  push = 0.5 * mean over ordered pairs (n, n'), n != n', of f(h_n - h_n'), with
         f = exp(-||.||^2) ('exp', the paper) or max(0, margin - ||.||) ('margin', the
         max-margin form of CornerNet, Law and Deng 2018, given the same 0.5 and normalisation).
Images with no person give pull = push = 0; with one person push = 0. Both stay finite and
have finite gradients in these cases.
"""

import functools

import jax
import jax.numpy as jnp

from hgjax import targets


# Module-level jit (nested jits inline): eager callers such as tests do not dispatch op by op.
@functools.partial(jax.jit, static_argnames=('heatmap_size', 'stride'))
def tag_targets(keypoints, heatmap_size: tuple, stride: int):
  """Where each joint reads its tag.

  Args:
    keypoints: [B, P, K, 3] float (x, y, v) in input pixels; v > 0 = labelled, padding v = 0.
    heatmap_size: (h, w) of the grid.
    stride: input pixels per grid pixel.
  Returns:
    indices [B, P, K] int32, flat index k * h * w + row * w + col into a [K, h, w] tag map
    (0 where not valid), and valid [B, P, K] bool (labelled and its pixel inside the grid).
  """
  h, w = heatmap_size
  g = targets.to_grid(keypoints, stride)
  col = jnp.floor(g[..., 0] + 0.5)
  row = jnp.floor(g[..., 1] + 0.5)
  valid = (g[..., 2] > 0) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
  k = jnp.arange(keypoints.shape[-2], dtype=jnp.int32)
  flat = k * (h * w) + row.astype(jnp.int32) * w + col.astype(jnp.int32)
  return jnp.where(valid, flat, 0).astype(jnp.int32), valid


@jax.jit
def gather_tags(tags, indices):
  """tags [B, h, w, K, D], indices [B, P, K] (from `tag_targets`) -> [B, P, K, D]."""
  b, h, w, k, d = tags.shape
  flat = jnp.moveaxis(tags, 3, 1).reshape(b, k * h * w, d)
  p = indices.shape[1]
  picked = jnp.take_along_axis(flat, indices.reshape(b, p * k)[..., None], axis=1)
  return picked.reshape(b, p, k, d)


@functools.partial(jax.jit, static_argnames=('form', 'margin'))
def push_pull(person_tags, valid, form: str = 'exp', margin: float = 1.0):
  """Push and pull losses of each image.

  Args:
    person_tags: [B, P, K, D] tag of joint k of person p.
    valid: [B, P, K] bool, the joints that take part.
    form: 'exp' or 'margin' (see the module docstring).
    margin: the margin of the 'margin' form, in tag units.
  Returns:
    (push [B], pull [B]) float32.
  """
  if form not in ('exp', 'margin'):
    raise ValueError(f"push form must be 'exp' or 'margin', got {form!r}")
  t = person_tags.astype(jnp.float32)
  m = valid.astype(jnp.float32)
  count = m.sum(-1)                                                   # [B, P]
  person = count > 0
  mean = (t * m[..., None]).sum(-2) / jnp.maximum(count, 1.0)[..., None]   # [B, P, D]
  sq = ((t - mean[:, :, None]) ** 2).mean(-1)                         # [B, P, K]
  pull_person = (sq * m).sum(-1) / jnp.maximum(count, 1.0)
  num = person.sum(-1).astype(jnp.float32)                            # [B]
  pull = (pull_person * person).sum(-1) / jnp.maximum(num, 1.0)

  d2 = ((mean[:, :, None] - mean[:, None]) ** 2).sum(-1)             # [B, P, P]
  p = mean.shape[1]
  pair = person[:, :, None] & person[:, None] & ~jnp.eye(p, dtype=bool)
  if form == 'exp':
    f = jnp.exp(-d2)
  else:
    # The floor keeps the gradient of sqrt finite for identical tags.
    f = jnp.maximum(0.0, margin - jnp.sqrt(jnp.maximum(d2, 1e-12)))
  pairs = jnp.maximum(num * (num - 1.0), 1.0)
  push = 0.5 * jnp.where(pair, f, 0.0).sum((-2, -1)) / pairs
  return push, pull
