"""Gaussian heatmap targets and the heatmap loss."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from hgjax import losses
from hgjax import targets


def _kp(points):
  """[(x, y, v), ...] -> keypoints [1, 1, K, 3]."""
  return jnp.asarray(np.array(points, np.float32)[None, None])


@pytest.mark.parametrize('x,y', [(20.0, 24.0), (21.3, 30.9), (33.75, 36.5)])
def test_gaussian_peak_at_subpixel_position(x, y):
  stride, sigma = 4, 1.5
  maps = np.asarray(targets.render_heatmaps(_kp([(x, y, 2)]), (16, 16), stride, sigma))[0, ..., 0]
  u, v = (x + 0.5) / stride - 0.5, (y + 0.5) / stride - 0.5
  iy, ix = np.unravel_index(maps.argmax(), maps.shape)
  assert (ix, iy) == (round(u), round(v))
  expected = np.exp(-((ix - u) ** 2 + (iy - v) ** 2) / (2 * sigma**2))
  assert maps[iy, ix] == pytest.approx(expected, rel=1e-5)
  # The centroid of the (symmetric, untruncated-enough) blob is the continuous position.
  yy, xx = np.mgrid[:16, :16]
  assert (maps * xx).sum() / maps.sum() == pytest.approx(u, abs=0.02)
  assert (maps * yy).sum() / maps.sum() == pytest.approx(v, abs=0.02)


def test_integer_grid_position_has_peak_one_and_window_cut():
  # x = 4u + 1.5 puts the joint exactly on grid pixel u.
  maps = np.asarray(targets.render_heatmaps(_kp([(4 * 8 + 1.5, 4 * 6 + 1.5, 1)]),
                                            (16, 16), 4, 1.0))[0, ..., 0]
  assert maps[6, 8] == pytest.approx(1.0)
  assert (maps > 0).sum() == 49            # the 7x7 window of sigma 1
  assert maps[6, 12] == 0.0


def test_invisible_and_out_of_grid_joints_render_nothing():
  kp = _kp([(30, 30, 0), (-20, 10, 2), (10, 500, 2), (30, 30, 2)])
  maps = np.asarray(targets.render_heatmaps(kp, (16, 16), 4, 1.0))[0]
  assert maps[..., :3].max() == 0.0
  assert maps[..., 3].max() > 0.9
  np.testing.assert_array_equal(targets.joint_weights(kp)[0], [0, 1, 1, 1])


def test_max_over_people():
  kp = jnp.asarray(np.array([[[[9.5, 9.5, 2]], [[41.5, 41.5, 2]]]], np.float32))
  maps = np.asarray(targets.render_heatmaps(kp, (16, 16), 4, 1.0))[0, ..., 0]
  assert maps[2, 2] == pytest.approx(1.0) and maps[10, 10] == pytest.approx(1.0)


def test_loss_zero_on_perfect_prediction_and_masked_joints_ignored():
  rng = np.random.default_rng(0)
  target = jnp.asarray(rng.random((2, 8, 8, 3), np.float32))
  pred = jnp.stack([target, target], axis=1)
  weight = jnp.ones((2, 3))
  np.testing.assert_allclose(losses.heatmap_mse(pred, target, weight, 1.0), 0.0)
  bad = pred.at[:, :, :, :, 1].add(5.0)
  masked = weight.at[:, 1].set(0.0)
  np.testing.assert_allclose(losses.heatmap_mse(bad, target, masked, 82.0), 0.0)
  # Unmasked: mean of 25 over one of three joints.
  np.testing.assert_allclose(losses.heatmap_mse(bad, target, weight, 1.0), 25.0 / 3, rtol=1e-6)


def test_foreground_weight_scales_error_on_target_pixels():
  target = jnp.zeros((1, 4, 4, 1)).at[0, 1, 1, 0].set(1.0)
  pred = jnp.zeros((1, 1, 4, 4, 1))                  # misses the single foreground pixel
  plain = losses.heatmap_mse(pred, target, jnp.ones((1, 1)), 1.0)
  weighted = losses.heatmap_mse(pred, target, jnp.ones((1, 1)), 82.0)
  np.testing.assert_allclose(plain, [[1 / 16]])
  np.testing.assert_allclose(weighted, [[82 / 16]])

_coord = st.floats(-40, 120, allow_nan=False, width=32)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(_coord, _coord, st.sampled_from([0.0, 1.0, 2.0])), min_size=3,
                max_size=3), st.floats(0.5, 3.0))
def test_heatmaps_are_finite_bounded_and_peak_where_the_joint_is(points, sigma):
  kp = _kp(points)
  maps = np.asarray(targets.render_heatmaps(kp, (20, 20), 4, sigma))[0]
  assert maps.shape == (20, 20, 3) and np.isfinite(maps).all()
  assert maps.min() >= 0.0 and maps.max() <= 1.0
  for k, (x, y, v) in enumerate(points):
    u, w = (x + 0.5) / 4 - 0.5, (y + 0.5) / 4 - 0.5
    if v == 0 or not (-0.5 <= u <= 19.5 and -0.5 <= w <= 19.5):
      assert maps[..., k].max() == 0.0
    else:
      iy, ix = np.unravel_index(maps[..., k].argmax(), (20, 20))
      assert abs(ix - np.clip(u, 0, 19)) <= 0.5 + 1e-4 and abs(iy - np.clip(w, 0, 19)) <= 0.5 + 1e-4
