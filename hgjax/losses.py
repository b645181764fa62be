"""Heatmap losses. Unreduced: callers average over what they choose."""

import jax.numpy as jnp


def heatmap_mse(pred, target, joint_weight, foreground_weight: float):
  """Masked, optionally foreground-weighted squared error of every stack.

  Args:
    pred: [B, S, h, w, K] float32, one prediction per stack.
    target: [B, h, w, K] float32.
    joint_weight: [B, K] (0 masks a joint out) or [B, h, w, K] (per pixel, e.g. ignore masks).
    foreground_weight: weight of pixels where target > 0 (1.0 = plain MSE).
  Returns:
    [B, S] mean over pixels and joints of weight * (pred - target)^2.
  """
  if joint_weight.ndim == 2:
    joint_weight = joint_weight[:, None, None, :]
  fg = jnp.where(target > 0, foreground_weight, 1.0)
  weight = (fg * joint_weight)[:, None]                         # [B, 1, h, w, K]
  sq = (pred - target[:, None]) ** 2
  return (weight * sq).mean(axis=(2, 3, 4))
