"""Host-side augmentation: random affine crop, horizontal flip with joint swap, colour jitter.

Every geometric step is one affine matrix A [2, 3] (original pixels -> network input pixels,
OpenCV convention, see `hgjax.transforms`), so the image, the keypoints and the ignore mask are
warped by the same map and a flip is just one more matrix in the product. Randomness comes from
the `np.random.Generator` that grain's `random_map` seeds from (seed, element index), so an
example's augmentation is a pure function of the pipeline seed and its index.
"""

import cv2
import numpy as np

from hgjax import transforms


def compose(outer, inner) -> np.ndarray:
  """The affine map [2, 3] of `outer` after `inner` (both [2, 3])."""
  outer = np.asarray(outer, np.float64)
  inner = np.asarray(inner, np.float64)
  return np.concatenate([outer[:, :2] @ inner[:, :2],
                         (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]], axis=1)


def flip_matrix(width: int) -> np.ndarray:
  """Horizontal flip of an image `width` px wide: x -> width - 1 - x. [2, 3] float64."""
  return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def grid_matrix(stride: int) -> np.ndarray:
  """Input pixels -> heatmap grid of `stride` ('continuous': u = (x + 0.5) / s - 0.5)."""
  s = float(stride)
  return np.array([[1.0 / s, 0.0, 0.5 / s - 0.5], [0.0, 1.0 / s, 0.5 / s - 0.5]])


def random_affine(rng: np.random.Generator, center, scale: float, output_size: int,
                  aug) -> tuple[np.ndarray, bool]:
  """Samples one augmentation and returns (A [2, 3] original -> input pixels, flipped).

  Args:
    rng: the element's generator (from grain's `random_map`).
    center: [2] crop centre in original pixels (hourglass-adjusted for MPII).
    scale: crop side / 200 px before augmentation.
    output_size: network input side S in pixels (square).
    aug: `config.augment`: scale in [scale_min, scale_max] multiplies the crop side; rotation
      uniform in [-rotation, rotation] degrees with probability rotation_prob; translation
      uniform in [-translate, translate] network-input pixels per axis; flip with p = 0.5.
  """
  s = rng.uniform(aug.scale_min, aug.scale_max)
  rot = rng.uniform(-aug.rotation, aug.rotation) if rng.uniform() < aug.rotation_prob else 0.0
  shift = rng.uniform(-aug.translate, aug.translate, size=2)
  flipped = bool(aug.flip) and rng.uniform() < 0.5
  a = transforms.crop_transform(center, scale * s, rot, (output_size, output_size))
  a[:, 2] += shift
  if flipped:
    a = compose(flip_matrix(output_size), a)
  return a, flipped


def warp_image(image: np.ndarray, matrix, output_size) -> np.ndarray:
  """Resamples image [H, W, C] uint8 through A [2, 3] to (w, h) = output_size; black outside."""
  return cv2.warpAffine(image, np.asarray(matrix, np.float64), tuple(int(v) for v in output_size),
                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def warp_keypoints(keypoints, matrix, flip_perm=None) -> np.ndarray:
  """Maps keypoints [..., K, 3] (x, y, v) through A; v is kept. With `flip_perm` [K] (the map
  contains a flip) joint j of the result is joint flip_perm[j] of the input, so left stays left
  in the flipped picture. Returns float32 [..., K, 3]."""
  kp = np.asarray(keypoints, np.float32)
  out = kp.copy()
  out[..., :2] = transforms.apply_affine(kp[..., :2], matrix)
  if flip_perm is not None:
    out = out[..., np.asarray(flip_perm), :]
  return out


def flip_keypoints(keypoints, width: int, flip_perm) -> np.ndarray:
  """Horizontal flip of keypoints [..., K, 3] in an image `width` px wide, joints swapped."""
  return warp_keypoints(keypoints, flip_matrix(width), flip_perm)


def warp_mask(mask: np.ndarray, matrix, output_size) -> np.ndarray:
  """Warps a 0/1 supervision mask [H, W] (uint8 or float) through A to (w, h) = output_size.

  Outside the source is 0 (not supervised); bilinear weights are thresholded at 0.5, so the
  result is float32 {0, 1}.
  """
  out = cv2.warpAffine(np.asarray(mask, np.float32), np.asarray(matrix, np.float64),
                       tuple(int(v) for v in output_size), flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
  return (out >= 0.5).astype(np.float32)


def color_jitter(image: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
  """Multiplies each channel of uint8 [H, W, 3] by a factor uniform in [1 - amount, 1 + amount]
  (rounded, clipped to 0..255), as the Stacked Hourglass training code does."""
  if amount <= 0:
    return image
  factors = rng.uniform(1.0 - amount, 1.0 + amount, size=3)
  # A diagonal colour matrix: OpenCV rounds and saturates to uint8 (3x faster than a LUT).
  return cv2.transform(image, np.diag(factors))


def pad_people(keypoints, max_people: int) -> np.ndarray:
  """keypoints [N, K, 3] -> [max_people, K, 3] float32: the first max_people people, then rows
  of zeros (v = 0, i.e. no person). People past max_people are dropped (explicit truncation)."""
  kp = np.asarray(keypoints, np.float32)
  out = np.zeros((max_people,) + kp.shape[1:], np.float32)
  n = min(len(kp), max_people)
  out[:n] = kp[:n]
  return out


def decode_jpeg(data: bytes, what: str) -> np.ndarray:
  """JPEG/PNG bytes -> RGB uint8 [H, W, 3] (EXIF orientation ignored: annotations refer to the
  stored pixels). `what` names the source in the error message."""
  image = cv2.imdecode(np.frombuffer(data, np.uint8),
                       cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
  if image is None:
    raise ValueError(f'{what}: corrupt or truncated image data ({len(data)} bytes) that OpenCV '
                     'cannot decode')
  return image
