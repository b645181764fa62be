"""Decoding: encode/decode round trips, quarter-pixel rule, flip test, mapping to the image."""

import functools

import hypothesis
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from hgjax import decode
from hgjax import skeleton
from hgjax import targets
from hgjax import transforms


def render(uv, size, sigma):
  """Local reference renderer: Gaussians at continuous grid positions uv [B, K, 2] (numpy).

  Returns [B, h, w, K] with exp(-d^2 / 2 sigma^2), untruncated.
  """
  h, w = size
  u, v = uv[..., 0], uv[..., 1]
  gx = np.exp(-(np.arange(w) - u[..., None])**2 / (2 * sigma**2))   # [B, K, w]
  gy = np.exp(-(np.arange(h) - v[..., None])**2 / (2 * sigma**2))   # [B, K, h]
  return np.einsum('bkh,bkw->bhwk', gy, gx).astype(np.float32)


peaks = decode.heatmap_peaks


@pytest.mark.parametrize('sigma', [1.0, 2.0])
@pytest.mark.parametrize('refine', ['taylor', 'dark'])
def test_round_trip_within_a_tenth_of_a_pixel(sigma, refine):
  rng = np.random.default_rng(int(sigma * 10))
  uv = rng.uniform(4, 59, size=(8, 16, 2))   # sub-pixel positions away from the borders
  coords, scores = peaks(jnp.asarray(render(uv, (64, 64), sigma)), refine=refine,
                         blur_sigma=sigma)
  err = np.linalg.norm(np.asarray(coords) - uv, axis=-1)
  assert err.max() < 0.1, err.max()
  assert np.all(np.asarray(scores) > 0.6)


@pytest.mark.parametrize('refine,bound', [('none', 0.5), ('quarter', 0.25)])
def test_coarse_refinements_error_bounds(refine, bound):
  uv = np.random.default_rng(1).uniform(4, 59, size=(4, 16, 2))
  coords, _ = peaks(jnp.asarray(render(uv, (64, 64), 1.0)), refine=refine)
  assert np.abs(np.asarray(coords) - uv).max() <= bound + 1e-5


def test_quarter_offsets_are_exact_for_quarter_positions():
  uv = np.array([[[10.25, 20.75], [30.75, 5.25], [7.0, 9.0]]])
  coords, _ = peaks(jnp.asarray(render(uv, (32, 40), 1.5)), refine='quarter')
  np.testing.assert_allclose(np.asarray(coords), uv, atol=1e-6)


def test_quarter_rule_closed_form():
  hm = np.zeros((1, 6, 8, 4), np.float32)
  hm[0, 2, 3, 0], hm[0, 2, 4, 0], hm[0, 1, 3, 0] = 1.0, 0.5, 0.2   # right and up larger
  hm[0, 0, 5, 1], hm[0, 0, 4, 1], hm[0, 1, 5, 1] = 1.0, 0.3, 0.4   # top border: no y shift
  hm[0, 3, 7, 2], hm[0, 3, 6, 2] = 1.0, 0.9                        # right border: no x shift
  hm[0, 3, 3, 3], hm[0, 3, 2, 3], hm[0, 3, 4, 3] = 1.0, 0.5, 0.5   # equal neighbours: none
  coords, scores = decode.heatmap_peaks(jnp.asarray(hm), refine='quarter')
  np.testing.assert_allclose(np.asarray(coords)[0],
                             [[3.25, 1.75], [4.75, 0.0], [7.0, 3.0], [3.0, 3.0]])
  np.testing.assert_allclose(np.asarray(scores)[0], 1.0)
  coords, _ = decode.heatmap_peaks(jnp.asarray(hm), refine='none')
  np.testing.assert_array_equal(np.asarray(coords)[0], [[3, 2], [5, 0], [7, 3], [3, 3]])


def test_round_trip_through_input_pixels_with_the_real_renderer():
  """targets.render_heatmaps and decode agree on the 'continuous' convention."""
  rng = np.random.default_rng(2)
  xy = rng.uniform(20, 236, size=(2, 1, 16, 2)).astype(np.float32)   # input px, 256 px input
  kp = np.concatenate([xy, np.ones((2, 1, 16, 1), np.float32)], axis=-1)
  render_real = jax.jit(targets.render_heatmaps, static_argnums=(1, 2, 3))
  hm = render_real(jnp.asarray(kp), (64, 64), 4, 1.0)
  coords, _ = peaks(hm, refine='taylor')
  back = np.asarray(decode.grid_to_input(coords, 4))
  assert np.abs(back - xy[:, 0]).max() < 0.1 * 4


def test_grid_input_conversions():
  x = np.array([0.0, 1.5, 255.0, -0.5, 255.5])
  u = decode.input_to_grid(x, 4)
  # Pixel block [4u - 0.5, 4u + 3.5] has its centre at grid u: pixel 1.5 is grid 0.
  np.testing.assert_allclose(u, [-0.375, 0.0, 63.375, -0.5, 63.5])
  np.testing.assert_allclose(decode.grid_to_input(u, 4), x)


def test_flip_merge_of_a_perfect_model_is_exact():
  """Heatmaps of the flipped image, flipped back with the joint swap, match the originals."""
  perm = skeleton.MPII_FLIP
  rng = np.random.default_rng(3)
  width = 256
  xy = rng.uniform(10, 246, size=(2, 16, 2))
  flipped = np.stack([width - 1 - xy[..., 0], xy[..., 1]], axis=-1)[:, perm]
  hm = render(decode.input_to_grid(xy, 4), (64, 64), 1.0)
  hm_flipped = render(decode.input_to_grid(flipped, 4), (64, 64), 1.0)
  merged = decode.flip_merge(jnp.asarray(hm), jnp.asarray(hm_flipped), perm)
  np.testing.assert_allclose(np.asarray(merged), hm, atol=1e-6)


def test_flip_test_of_a_symmetric_input_is_symmetric():
  """A flip-symmetric image gives the same network output flipped or not: the merged maps and
  the decoded keypoints are mirror images of themselves with left and right swapped."""
  perm = skeleton.COCO_FLIP
  width = 25
  hm = np.random.default_rng(4).uniform(0, 1, size=(2, 32, width, 17)).astype(np.float32)
  # Self-mirrored joints (the nose) of a symmetric image peak on the centre column; elsewhere
  # their merged maps are mirror-symmetric, so an off-centre maximum would be a tie.
  hm[:, 7, width // 2, perm == np.arange(17)] = 2.0
  merged = decode.flip_merge(jnp.asarray(hm), jnp.asarray(hm), perm)
  np.testing.assert_allclose(np.asarray(jnp.flip(merged, axis=-2)[..., perm]),
                             np.asarray(merged), atol=1e-7)
  for refine in decode.REFINEMENTS:
    coords = np.asarray(decode.heatmap_peaks(merged, refine=refine)[0])
    mirrored = np.stack([width - 1 - coords[..., 0], coords[..., 1]], axis=-1)[:, perm]
    np.testing.assert_allclose(mirrored, coords, atol=1e-5, err_msg=refine)


def test_flip_merge_keeps_stack_axis():
  hm = jnp.asarray(np.random.default_rng(5).uniform(size=(2, 3, 8, 8, 16)), jnp.float32)
  merged = decode.flip_merge(hm, hm[..., ::-1, :], np.arange(16))
  np.testing.assert_allclose(np.asarray(merged), np.asarray(hm), atol=1e-7)


def test_grid_to_image_matches_the_host_affine():
  rng = np.random.default_rng(6)
  a = np.stack([transforms.crop_transform(rng.uniform(100, 500, 2), rng.uniform(0.5, 3),
                                          rng.uniform(-30, 30), (256, 256)) for _ in range(3)])
  inv = np.stack([transforms.invert_affine(m) for m in a])
  coords = rng.uniform(0, 63, size=(3, 16, 2)).astype(np.float32)
  got = np.asarray(decode.grid_to_image(jnp.asarray(coords), 4, inv))
  want = np.stack([transforms.apply_affine(decode.grid_to_input(c, 4), m)
                   for c, m in zip(coords, inv, strict=True)])
  np.testing.assert_allclose(got, want, atol=1e-3)


def test_unknown_refinement_is_an_error():
  with pytest.raises(ValueError, match='refine must be one of'):
    decode.heatmap_peaks(jnp.zeros((1, 4, 4, 1)), refine='subpixel')


def test_gaussian_blur_matches_scipy():
  from scipy.ndimage import gaussian_filter
  x = np.random.default_rng(7).normal(size=(1, 12, 9, 2)).astype(np.float32)
  got = np.asarray(decode.gaussian_blur(jnp.asarray(x), 1.5))
  want = gaussian_filter(x, sigma=(0, 1.5, 1.5, 0), mode='mirror', truncate=3.0)
  np.testing.assert_allclose(got, want, atol=1e-5)


# ---------------------------------------------------------------------------- property tests

H, W, K = 12, 10, 3


@functools.cache
def jitted(refine):
  return jax.jit(functools.partial(decode.heatmap_peaks, refine=refine))


def assert_finite_inside(heatmaps):
  for refine in decode.REFINEMENTS:
    coords, scores = jitted(refine)(jnp.asarray(heatmaps))
    coords = np.asarray(coords)
    assert np.all(np.isfinite(coords)) and np.all(np.isfinite(np.asarray(scores))), refine
    assert np.all(coords >= 0), refine
    assert np.all(coords[..., 0] <= W - 1) and np.all(coords[..., 1] <= H - 1), refine


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(
    uv=hnp.arrays(np.float64, (1, K, 2), elements=st.floats(-3, 14, allow_nan=False)),
    sigma=st.sampled_from([0.5, 1.0, 2.0]))
def test_random_keypoints_decode_finite_and_inside(uv, sigma):
  assert_finite_inside(render(uv, (H, W), sigma))


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(hnp.arrays(np.float32, (1, H, W, K),
                             elements=st.floats(-1e3, 1e3, allow_nan=False, width=32)))
def test_arbitrary_heatmaps_decode_finite_and_inside(heatmaps):
  assert_finite_inside(heatmaps)
