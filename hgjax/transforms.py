"""Host-side affine crop transforms (numpy, OpenCV conventions).

Pixel convention 'continuous' (the same as OpenCV's): pixel centres sit at integer coordinates,
so the image of width W spans x in [-0.5, W - 0.5]. A matrix A [2, 3] maps a point p = (x, y) of
the source image to A[:, :2] @ p + A[:, 2] in the destination; `cv2.warpAffine(image, A, (w, h))`
resamples with exactly this matrix, so warped pixels and `apply_affine` agree.

Typical use: `A = crop_transform(center, scale, rot, (256, 256))`, warp the image and keypoints
with A for training; at evaluation map predictions back with `apply_affine(p, invert_affine(A))`.
"""

import cv2
import numpy as np

# MPII/hourglass convention: a person `scale` of 1 is 200 px tall.
PIXELS_PER_SCALE = 200.0


def crop_transform(center, scale: float, rotation_deg: float, output_size) -> np.ndarray:
  """Affine map from original-image pixels to crop pixels.

  The crop covers the square of side `scale * 200` px centred on `center` (rotated by
  `rotation_deg` about it); the square's outer edges map to the crop's outer edges
  (x = -0.5 and x = w - 0.5), so `center` lands on the crop centre ((w - 1) / 2, (h - 1) / 2).
  A non-square `output_size` stretches the square anisotropically (as the hourglass code does).

  Args:
    center: [2] (x, y) in original pixels, 0-based.
    scale: square side / 200 px (hourglass-adjusted MPII scale, or any box size / 200).
    rotation_deg: positive values rotate the image content counter-clockwise in the crop (as
      `cv2.getRotationMatrix2D` with a positive angle, y pointing down).
    output_size: (w, h) of the crop in pixels.
  Returns:
    A [2, 3] float64.
  """
  cx, cy = float(center[0]), float(center[1])
  w, h = float(output_size[0]), float(output_size[1])
  side = float(scale) * PIXELS_PER_SCALE
  theta = np.deg2rad(float(rotation_deg))
  cos, sin = np.cos(theta), np.sin(theta)
  rot = np.array([[cos, sin], [-sin, cos]])
  zoom = np.diag([w / side, h / side])
  linear = zoom @ rot
  # The square's centre goes to the crop's centre, which is (w - 1) / 2 in pixel-centre units.
  offset = np.array([(w - 1.0) / 2.0, (h - 1.0) / 2.0]) - linear @ np.array([cx, cy])
  return np.concatenate([linear, offset[:, None]], axis=1)


def invert_affine(matrix) -> np.ndarray:
  """The inverse [2, 3] float64 of an invertible affine map [2, 3]."""
  matrix = np.asarray(matrix, dtype=np.float64)
  if matrix.shape != (2, 3):
    raise ValueError(f'affine matrix must have shape (2, 3), got {matrix.shape}')
  return cv2.invertAffineTransform(matrix)


def apply_affine(points, matrix) -> np.ndarray:
  """Maps points [..., 2] (x, y) through A [2, 3]; returns [..., 2] float64."""
  points = np.asarray(points, dtype=np.float64)
  matrix = np.asarray(matrix, dtype=np.float64)
  return points @ matrix[:, :2].T + matrix[:, 2]
