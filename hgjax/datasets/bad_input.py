"""Bad-input policy shared by the dataset builders: fail with a clear message, or skip and count.

A builder wraps each example's reading and checking in `BadExamples.guard`; a `BadExampleError`
raised inside either propagates (`on_bad_example='error'`) or is recorded and the example left
out (`'skip'`). Messages name the file, the field and the offending value.
"""

import collections
import io
import threading
from pathlib import Path

import numpy as np
import PIL.Image

POLICIES = ('error', 'skip')


class BadExampleError(ValueError):
  """One example of the source data is unusable (corrupt image, invalid annotation, ...)."""

  def __init__(self, message: str, reason: str):
    super().__init__(message)
    self.reason = reason


class BadExamples:
  """Applies `on_bad_example` and remembers what was skipped (thread safe)."""

  def __init__(self, on_bad_example: str):
    if on_bad_example not in POLICIES:
      raise ValueError(f'on_bad_example={on_bad_example!r}; valid: {", ".join(POLICIES)}')
    self.policy = on_bad_example
    self.skipped: list[str] = []
    self.counts: collections.Counter = collections.Counter()
    self._lock = threading.Lock()

  def skip_or_raise(self, error: BadExampleError) -> None:
    if self.policy == 'error':
      raise error
    with self._lock:
      self.skipped.append(str(error))
      self.counts[error.reason] += 1

  def report(self, max_messages: int = 20) -> str:
    """A human-readable summary of the skips ('' when nothing was skipped)."""
    if not self.skipped:
      return ''
    lines = [f'skipped {len(self.skipped)} bad examples (on_bad_example=skip):']
    lines += [f'  {n} x {reason}' for reason, n in sorted(self.counts.items())]
    lines += [f'  - {m}' for m in self.skipped[:max_messages]]
    if len(self.skipped) > max_messages:
      lines.append(f'  ... and {len(self.skipped) - max_messages} more')
    return '\n'.join(lines)


def read_image_bytes(path: Path, context: str) -> bytes:
  """The bytes of an image file; a missing or unreadable file is a `BadExampleError`."""
  try:
    return path.read_bytes()
  except FileNotFoundError:
    raise BadExampleError(f'image file not found: {path} ({context})', 'missing image') from None
  except OSError as e:
    raise BadExampleError(f'cannot read image file {path} ({context}): {e}',
                          'unreadable image') from None


def decode_image(data: bytes, path: Path, context: str, reduced: bool = False) -> np.ndarray:
  """Fully decodes image bytes to RGB uint8 [H, W, 3] with Pillow, which (unlike some OpenCV
  versions) refuses truncated files; corrupt or truncated data is a `BadExampleError`.

  `reduced=True` decodes JPEGs at about 1/8 size (DCT scaling: the whole file is still read and
  checked, several times faster); the returned array is then smaller, use `image_size` for the
  stored size.
  """
  try:
    with PIL.Image.open(io.BytesIO(data)) as im:
      if reduced:
        im.draft('RGB', (max(1, im.width // 8), max(1, im.height // 8)))
      im.load()
      return np.asarray(im.convert('RGB'))
  except (OSError, SyntaxError, ValueError) as e:   # PIL's decoder errors
    raise BadExampleError(f'corrupt or truncated image file {path} ({context}): {e}',
                          'corrupt image') from None


def image_size(data: bytes) -> tuple[int, int]:
  """(width, height) from the image header."""
  with PIL.Image.open(io.BytesIO(data)) as im:
    return im.size


def finite_array(value, shape, what: str, reason: str = 'invalid value') -> np.ndarray:
  """`value` as float64 of `shape` with finite entries, else a `BadExampleError` naming it."""
  try:
    arr = np.asarray(value, np.float64)
  except (TypeError, ValueError):
    raise BadExampleError(f'{what}: value {value!r} is not numeric', reason) from None
  if arr.shape != tuple(shape):
    raise BadExampleError(f'{what}: value {value!r} has shape {arr.shape}, expected '
                          f'{tuple(shape)}', reason)
  if not np.all(np.isfinite(arr)):
    raise BadExampleError(f'{what}: value {value!r} is not finite', 'non-finite value')
  return arr


def check_inside(points, labelled, width: int, height: int, what: str,
                 item: str = 'joint') -> None:
  """Labelled points [K, 2] (0-based pixels) must lie in the image or near it.

  Real annotations do reach outside the frame (MPII head tops up to 30 px above it), so only
  points farther out than half the image's larger side count as bad (a broken annotation, a
  missing-joint marker taken as a joint, or the wrong image).
  """
  pts = np.asarray(points, np.float64)
  margin = 0.5 * max(width, height)
  far = labelled & np.any((pts < -margin) | (pts > np.array([width, height]) - 1 + margin),
                          axis=-1)
  if far.any():
    j = int(np.flatnonzero(far)[0])
    kind = 'is negative, ' if np.any(pts[j] < 0) else ''
    where = f' {item} {j}' if item else ''
    raise BadExampleError(f'{what}{where}: value {pts[j].round(3).tolist()} (0-based) {kind}'
                          f'far outside the {width}x{height} image', 'point far outside image')
