"""Augmentation geometry: dots land where the keypoint map says, flips, masks, jitter, padding."""

import cv2
import ml_collections
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from hgjax import skeleton
from hgjax import transforms
from hgjax.datasets import augment


def _aug(**kw):
  a = ml_collections.ConfigDict(dict(scale_min=0.75, scale_max=1.25, rotation=30.0,
                                     rotation_prob=1.0, translate=20.0, flip=True,
                                     color_jitter=0.2))
  a.update(kw)
  return a


def _blob_image(points, shape, sigma=2.5):
  """float32 image [H, W] with a Gaussian dot at each (x, y) (0-based pixel centres)."""
  ys, xs = np.mgrid[:shape[0], :shape[1]].astype(np.float64)
  img = np.zeros(shape, np.float64)
  for x, y in points:
    img += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2))
  return img.astype(np.float32)


def _centroid(img, near, radius=12):
  """Intensity-weighted centroid of img [H, W] within `radius` of `near` (x, y)."""
  ys, xs = np.mgrid[:img.shape[0], :img.shape[1]].astype(np.float64)
  w = img * (((xs - near[0]) ** 2 + (ys - near[1]) ** 2) <= radius ** 2)
  return np.array([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])


@pytest.mark.parametrize('seed', range(6))
def test_drawn_dot_lands_on_the_warped_keypoint(seed):
  rng = np.random.default_rng(seed)
  shape = (300, 400)
  # Three dots at least 60 px apart, within 60 px of the crop centre.
  points = np.array([[140.0, 150.0], [200.0, 100.0], [260.0, 170.0]]) + rng.uniform(-5, 5, (3, 2))
  image = _blob_image(points, shape)
  center = np.array([200.0, 150.0]) + rng.uniform(-10, 10, 2)
  matrix, flipped = augment.random_affine(rng, center, 1.5, 128, _aug())
  warped = cv2.warpAffine(image, matrix, (128, 128), flags=cv2.INTER_LINEAR)
  kp = np.concatenate([points, np.ones((3, 1))], 1)
  moved = augment.warp_keypoints(kp, matrix)   # no joint swap: these are anonymous dots
  for p in moved:
    assert 10 < p[0] < 118 and 10 < p[1] < 118
    # The warped blob is smaller by the zoom (>= 0.43 here), so its centroid is still sharp.
    # Required: within 0.5 px; measured ~0.01 px, so a half-pixel convention slip fails here.
    np.testing.assert_allclose(_centroid(warped, p[:2], radius=8), p[:2], atol=0.05)


def test_affine_parameters_stay_in_their_ranges():
  aug = _aug(translate=0.0, flip=False)
  rng = np.random.default_rng(1)
  for _ in range(200):
    m, flipped = augment.random_affine(rng, (100.0, 100.0), 2.0, 256, aug)
    zoom = np.sqrt(abs(np.linalg.det(m[:, :2])))
    s = 256 / (2.0 * 200.0) / zoom
    angle = np.degrees(np.arctan2(m[0, 1], m[0, 0]))
    assert 0.75 - 1e-9 <= s <= 1.25 + 1e-9 and abs(angle) <= 30 + 1e-9 and not flipped
    # The crop centre stays the box centre without translation.
    np.testing.assert_allclose(transforms.apply_affine((100.0, 100.0), m), [127.5, 127.5],
                               atol=1e-9)


def test_flip_probability_and_translation_range():
  aug = _aug(rotation=0.0, scale_min=1.0, scale_max=1.0, translate=40.0)
  rng = np.random.default_rng(2)
  flips, shifts = [], []
  for _ in range(400):
    m, flipped = augment.random_affine(rng, (100.0, 100.0), 1.0, 64, aug)
    flips.append(flipped)
    c = transforms.apply_affine((100.0, 100.0), m)
    if flipped:
      c[0] = 63 - c[0]
    shifts.append(c - 31.5)
  assert 0.4 < np.mean(flips) < 0.6
  assert np.abs(shifts).max() <= 40 and np.abs(shifts).max() > 30


def test_flip_twice_is_identity():
  rng = np.random.default_rng(3)
  image = rng.integers(0, 256, (40, 57, 3), dtype=np.uint8)
  f = augment.flip_matrix(57)
  twice = augment.warp_image(augment.warp_image(image, f, (57, 40)), f, (57, 40))
  np.testing.assert_array_equal(twice, image)
  np.testing.assert_array_equal(augment.warp_image(image, f, (57, 40)), image[:, ::-1])
  for k in (16, 17):
    kp = np.concatenate([rng.uniform(0, 56, (2, k, 2)), rng.integers(0, 3, (2, k, 1))], -1)
    perm = skeleton.flip_for(k)
    back = augment.flip_keypoints(augment.flip_keypoints(kp, 57, perm), 57, perm)
    np.testing.assert_allclose(back, kp, atol=1e-4)


def test_flip_swaps_the_joint_pairs():
  rng = np.random.default_rng(4)
  for k, pairs in ((16, skeleton.MPII_FLIP_PAIRS), (17, skeleton.COCO_FLIP_PAIRS)):
    kp = np.concatenate([rng.uniform(0, 99, (k, 2)), np.full((k, 1), 2.0)], -1)
    out = augment.flip_keypoints(kp, 100, skeleton.flip_for(k))
    paired = set()
    for a, b in pairs:
      paired |= {a, b}
      for src, dst in ((a, b), (b, a)):
        np.testing.assert_allclose(out[dst], [99 - kp[src, 0], kp[src, 1], 2.0], atol=1e-4)
    for j in set(range(k)) - paired:   # centre joints stay, mirrored
      np.testing.assert_allclose(out[j], [99 - kp[j, 0], kp[j, 1], 2.0], atol=1e-4)


@pytest.mark.parametrize('seed', range(3))
def test_mask_warps_with_the_image(seed):
  rng = np.random.default_rng(seed)
  region = np.zeros((240, 320), np.uint8)
  cv2.rectangle(region, (60, 50), (150, 170), 1, -1)
  cv2.circle(region, (230, 120), 40, 1, -1)
  image = np.repeat((region * 255)[..., None], 3, axis=2)
  matrix, _ = augment.random_affine(rng, (160.0, 120.0), 1.6, 256, _aug())
  warped = augment.warp_image(image, matrix, (256, 256))[..., 0].astype(np.float32) / 255
  stride = 4
  mask = augment.warp_mask(region, augment.compose(augment.grid_matrix(stride), matrix),
                           (64, 64))
  # The image, averaged over each 4x4 cell, marks the same cells as the warped mask.
  cells = warped.reshape(64, 4, 64, 4).mean(axis=(1, 3))
  decided = np.abs(cells - 0.5) > 0.3   # away from the region's edge
  assert decided.sum() > 0.8 * 64 * 64
  np.testing.assert_array_equal(mask[decided], (cells[decided] > 0.5).astype(np.float32))
  assert set(np.unique(mask)) <= {0.0, 1.0}


def test_mask_outside_the_source_is_not_supervised():
  ones = np.ones((100, 100), np.uint8)
  m = transforms.crop_transform((50.0, 50.0), 1.0, 0.0, (64, 64))   # 200 px square over 100 px
  mask = augment.warp_mask(ones, augment.compose(augment.grid_matrix(4), m), (16, 16))
  np.testing.assert_array_equal(mask[4:12, 4:12], 1.0)
  assert mask[:3].sum() == 0 and mask[13:].sum() == 0 and mask[:, :3].sum() == 0


def test_grid_matrix_is_the_continuous_convention():
  g = augment.grid_matrix(4)
  np.testing.assert_allclose(transforms.apply_affine([[-0.5, 1.5], [255.5, 10.0]], g),
                             [[-0.5, 0.0], [63.5, 2.125]], atol=1e-12)


def test_color_jitter_scales_each_channel_within_range():
  rng = np.random.default_rng(5)
  image = np.full((8, 8, 3), 100, np.uint8)
  for _ in range(20):
    out = augment.color_jitter(image, rng, 0.2)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.all((out >= 80) & (out <= 120)) and np.all(out == out[0, 0])
  np.testing.assert_array_equal(augment.color_jitter(image, rng, 0.0), image)
  bright = np.full((2, 2, 3), 250, np.uint8)
  assert augment.color_jitter(bright, np.random.default_rng(0), 0.5).max() <= 255


def test_pad_people_truncates_and_pads_explicitly():
  kp = np.arange(35 * 17 * 3, dtype=np.float32).reshape(35, 17, 3) + 1
  out = augment.pad_people(kp, 30)
  assert out.shape == (30, 17, 3)
  np.testing.assert_array_equal(out, kp[:30])
  small = augment.pad_people(kp[:2], 30)
  np.testing.assert_array_equal(small[:2], kp[:2])
  assert not small[2:].any()
  assert augment.pad_people(np.zeros((0, 16, 3)), 1).shape == (1, 16, 3)


def test_compose_matches_sequential_application():
  rng = np.random.default_rng(6)
  a, b = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
  p = rng.normal(size=(5, 2))
  np.testing.assert_allclose(transforms.apply_affine(p, augment.compose(a, b)),
                             transforms.apply_affine(transforms.apply_affine(p, b), a),
                             atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cx=st.floats(-500, 2000), cy=st.floats(-500, 2000),
       scale=st.floats(0.1, 20), size=st.sampled_from([64, 256, 512]),
       k=st.sampled_from([16, 17]))
def test_random_affine_properties(seed, cx, cy, scale, size, k):
  rng = np.random.default_rng(seed)
  aug = _aug(translate=size / 8)
  m, flipped = augment.random_affine(rng, (cx, cy), scale, size, aug)
  assert np.all(np.isfinite(m))
  zoom = np.sqrt(abs(np.linalg.det(m[:, :2])))
  side = scale * 200   # crop side before augmentation, original pixels
  assert size / (side * 1.25) * (1 - 1e-9) <= zoom <= size / (side * 0.75) * (1 + 1e-9)
  assert (np.linalg.det(m[:, :2]) < 0) == flipped   # a flip reverses orientation
  c = transforms.apply_affine((cx, cy), m)
  assert np.all(np.abs(c - (size - 1) / 2) <= size / 8 + 1e-6)   # centre moves by translate only
  kp = np.concatenate([rng.uniform(-50, 300, (3, k, 2)), rng.integers(0, 3, (3, k, 1))], -1)
  perm = skeleton.flip_for(k) if flipped else None
  out = augment.warp_keypoints(kp, m, perm)
  assert out.shape == kp.shape and out.dtype == np.float32 and np.all(np.isfinite(out))
  back = augment.warp_keypoints(out, transforms.invert_affine(m), perm)
  np.testing.assert_allclose(back, kp, atol=1e-3 * max(1.0, 1 / zoom), rtol=1e-4)
