"""Crop transforms: geometry in closed form, agreement with OpenCV, image round trips."""

import cv2
import numpy as np
import pytest

from hgjax import decode
from hgjax import transforms


def test_unrotated_square_maps_onto_the_crop_edges():
  center, scale, size = np.array([300.0, 200.0]), 1.5, 256   # square side 300 px
  a = transforms.crop_transform(center, scale, 0.0, (size, size))
  corners = center + np.array([[-150.0, -150.0], [150.0, 150.0], [0.0, 0.0]])
  np.testing.assert_allclose(transforms.apply_affine(corners, a),
                             [[-0.5, -0.5], [size - 0.5, size - 0.5], [127.5, 127.5]],
                             atol=1e-9)


def test_non_square_output_covers_the_square():
  a = transforms.crop_transform((50.0, 80.0), 0.5, 0.0, (64, 128))   # square side 100 px
  np.testing.assert_allclose(transforms.apply_affine([[0.0, 30.0], [100.0, 130.0]], a),
                             [[-0.5, -0.5], [63.5, 127.5]], atol=1e-9)


@pytest.mark.parametrize('rotation', [-30.0, 0.0, 17.5, 90.0])
def test_rotation_matches_opencv(rotation):
  center, scale, size = (412.3, 250.8), 2.0, 256
  a = transforms.crop_transform(center, scale, rotation, (size, size))
  m = cv2.getRotationMatrix2D(center, rotation, size / (scale * 200.0))
  np.testing.assert_allclose(a[:, :2], m[:, :2], atol=1e-12)
  np.testing.assert_allclose(transforms.apply_affine(center, a), [127.5, 127.5], atol=1e-9)


def test_positive_rotation_turns_content_counter_clockwise():
  # A point straight above the centre moves to the left of the crop centre (y points down).
  a = transforms.crop_transform((100.0, 100.0), 1.0, 90.0, (200, 200))
  np.testing.assert_allclose(transforms.apply_affine([100.0, 50.0], a), [49.5, 99.5], atol=1e-9)


def test_invert_affine_round_trip():
  rng = np.random.default_rng(0)
  a = transforms.crop_transform(rng.uniform(0, 500, 2), 1.7, 23.0, (192, 256))
  inv = transforms.invert_affine(a)
  pts = rng.uniform(-50, 600, size=(5, 7, 2))
  np.testing.assert_allclose(transforms.apply_affine(transforms.apply_affine(pts, a), inv), pts,
                             atol=1e-9)
  with pytest.raises(ValueError, match=r'shape \(2, 3\)'):
    transforms.invert_affine(np.eye(3))


def blob(shape, xy, sigma):
  """A Gaussian dot [h, w] float32 centred on continuous pixel position xy."""
  yy, xx = np.mgrid[:shape[0], :shape[1]]
  return np.exp(-((xx - xy[0])**2 + (yy - xy[1])**2) / (2 * sigma**2)).astype(np.float32)


def centroid(image):
  yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
  weights = np.clip(image, 0, None)
  return np.array([(xx * weights).sum(), (yy * weights).sum()]) / weights.sum()


@pytest.mark.parametrize('rotation', [0.0, -27.0, 33.0])
def test_keypoint_maps_back_through_crop_and_resize(shared_data, rotation):
  """A dot painted on a real image, warped with cv2.warpAffine, downscaled to the heatmap grid,
  found there and mapped back with the inverse transform, lands within 0.5 px of where it was."""
  image = cv2.imread(str(shared_data / 'mmpose/tests/data/mpii/005808361.jpg'))
  assert image is not None
  image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
  dot_xy = np.array([981.37, 253.81])        # near the head of the annotated person
  painted = image + 120.0 * blob(image.shape, dot_xy, 5.0)
  a = transforms.crop_transform((966.0, 410.8), 2.2, rotation, (256, 256))   # 440 px square
  crop = cv2.warpAffine(painted, a, (256, 256), flags=cv2.INTER_LINEAR)
  crop_plain = cv2.warpAffine(image, a, (256, 256), flags=cv2.INTER_LINEAR)
  dot_crop = crop - crop_plain               # the dot alone, in crop pixels
  np.testing.assert_allclose(centroid(dot_crop), transforms.apply_affine(dot_xy, a), atol=0.1)
  # Stride-4 heatmap-like grid: INTER_AREA averages 4x4 blocks, the 'continuous' convention.
  grid = cv2.resize(dot_crop, (64, 64), interpolation=cv2.INTER_AREA)
  coords, _ = decode.heatmap_peaks(grid[None, :, :, None], refine='taylor')
  in_crop = decode.grid_to_input(np.asarray(coords)[0, 0], 4)
  back = transforms.apply_affine(in_crop, transforms.invert_affine(a))
  assert np.linalg.norm(back - dot_xy) < 0.5
