"""MPII Human Pose: annotation readers (both real layouts) and the tfds builder `hgjax_mpii`.

manual_dir layouts (images always in `images/`):
  * SimpleBaseline/HRNet: `annot/train.json`, `annot/valid.json` (lists of records `image`,
    `center` [2], `scale`, `joints` [16][2] 1-based, `joints_vis` [16]) and `annot/gt_valid.mat`
    (head boxes of the 2958 validation persons in valid.json order). A split whose file is
    absent is not built.
  * The official release: `mpii_human_pose_v1_u12_1.mat` (`RELEASE.annolist`, `img_train`) and
    `gt_valid.mat` (here or in `annot/`), whose 2958 persons, in that order, are the validation
    split (Tompson et al.); they are found in the release by head box and joints (or by
    `RELEASE_img_index`/`RELEASE_person_index` when the file has them). Training = every other
    person with annotated joints in a training image.

Every example is one person. Coordinates are converted to 0-based pixels on load; `center` and
`scale` are stored as annotated (the hourglass adjustment is the pipeline's job, see
`hourglass_box`). The image is stored pre-cropped: a square of `crop_margin` x the hourglass box
around the person, resized to at most `crop_pixels` px per box side, JPEG-encoded; the affine
`crop_transform` maps original-image pixels to stored-image pixels so every prediction maps back
exactly (keypoints, centre and head box stay in original-image pixels).
"""

import collections
import concurrent.futures
import dataclasses
import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import scipy.io
import tensorflow_datasets as tfds

from hgjax.datasets import bad_input
from hgjax.datasets.bad_input import BadExampleError

NUM_JOINTS = 16
RELEASE_FILE = 'mpii_human_pose_v1_u12_1.mat'
JPEG_QUALITY = 95


@dataclasses.dataclass
class Person:
  """One annotated person, 0-based pixels of the original image.

  keypoints: [16, 3] float32 (x, y, v); v = 0 not annotated (x = y = 0), 1 annotated (not
    visible or visibility unknown), 2 annotated and marked visible.
  head_box: [2, 2] float32 [[x1, y1], [x2, y2]] or None when the source has none.
  release_index: 1-based (image, person) in the official release, (-1, -1) if unknown.
  source: where the person comes from, for error messages.
  """
  image: str
  center: np.ndarray
  scale: float
  keypoints: np.ndarray
  head_box: np.ndarray | None
  person_index: int
  release_index: tuple
  source: str


def hourglass_box(center, scale: float) -> tuple[np.ndarray, float]:
  """The Stacked Hourglass crop box from an annotated MPII centre/scale: the centre moves down by
  15 * scale px and the scale grows by 1.25. Apply once (Princeton h5 files already have it).
  Returns (center [2] float64, scale)."""
  c = np.asarray(center, np.float64).copy()
  c[1] += 15.0 * scale
  return c, 1.25 * float(scale)


# ----------------------------------------------------------------------------------------------
# Validation of one person (shared by both layouts).


def _check_scale(value, what: str) -> float:
  try:
    s = float(np.asarray(value, np.float64).reshape(()))
  except (TypeError, ValueError):
    raise BadExampleError(f"{what} field 'scale': value {value!r} is not a number",
                          'invalid scale') from None
  if not math.isfinite(s) or s <= 0:
    raise BadExampleError(f"{what} field 'scale': value {value!r} is not positive",
                          'non-positive scale')
  return s


def _check_center(value, what: str) -> np.ndarray:
  return bad_input.finite_array(value, (2,), f"{what} field 'center'", 'invalid center')


def _check_joint(xy, what: str) -> np.ndarray:
  """A labelled joint (x, y) of the source: finite. (Whether it is near the image is checked
  once the image size is known, see `bad_input.check_inside`.)"""
  return bad_input.finite_array(xy, (2,), what, 'invalid joint')


# ----------------------------------------------------------------------------------------------
# SimpleBaseline/HRNet JSON layout.


def load_json(path: Path):
  """json.load with a message naming the file on malformed content (never skippable)."""
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f'malformed JSON in {path}: {e}') from None


def person_from_json(record, index: int, source: str) -> Person:
  """One HRNet-style record -> Person (0-based). Raises BadExampleError naming the field."""
  what = f'{source} record {index}'
  if not isinstance(record, dict):
    raise BadExampleError(f'{what}: expected an object, got {record!r}', 'malformed record')
  for key in ('image', 'center', 'scale', 'joints', 'joints_vis'):
    if key not in record:
      raise BadExampleError(f"{what}: missing field '{key}'", 'missing field')
  image = record['image']
  if not isinstance(image, str) or not image:
    raise BadExampleError(f"{what} field 'image': value {image!r} is not a file name",
                          'malformed record')
  what = f'{source} record {index} (image {image!r})'
  joints, vis = record['joints'], record['joints_vis']
  if not isinstance(joints, list) or len(joints) != NUM_JOINTS:
    n = len(joints) if isinstance(joints, list) else type(joints).__name__
    raise BadExampleError(f"{what} field 'joints': has {n} joints, expected {NUM_JOINTS}",
                          'wrong number of joints')
  if not isinstance(vis, list) or len(vis) != NUM_JOINTS:
    n = len(vis) if isinstance(vis, list) else type(vis).__name__
    raise BadExampleError(f"{what} field 'joints_vis': has {n} values, expected {NUM_JOINTS}",
                          'wrong number of joints')
  keypoints = np.zeros((NUM_JOINTS, 3), np.float32)
  for j in range(NUM_JOINTS):
    try:
      labelled = float(vis[j]) > 0
    except (TypeError, ValueError):
      raise BadExampleError(f"{what} field 'joints_vis' joint {j}: value {vis[j]!r} is not a "
                            'number', 'invalid joint') from None
    if labelled:
      p = _check_joint(joints[j], f"{what} field 'joints' joint {j}")
      if p[0] == -1 and p[1] == -1:
        raise BadExampleError(f"{what} field 'joints' joint {j}: value [-1, -1] is the "
                              "missing-joint marker, but 'joints_vis' says labelled",
                              'negative coordinate')
      # v = 1: the JSON says 'annotated' and nothing about visibility.
      keypoints[j] = (p[0] - 1.0, p[1] - 1.0, 1.0)
  center = _check_center(record['center'], what)
  if center[0] == -1 and center[1] == -1:
    raise BadExampleError(f"{what} field 'center': value [-1, -1] is the missing-position "
                          'marker', 'missing center')
  center -= 1.0
  scale = _check_scale(record['scale'], what)
  return Person(image=image, center=center.astype(np.float32), scale=scale,
                keypoints=keypoints, head_box=None, person_index=index,
                release_index=(-1, -1), source=what)


def read_json_split(path: Path) -> list:
  """annot/{train,valid}.json -> list of (Person or BadExampleError), in file order."""
  records = load_json(path)
  if not isinstance(records, list):
    raise ValueError(f'malformed annotation file {path}: expected a JSON list of records, got '
                     f'{type(records).__name__}')
  source = f'{path.parent.name}/{path.name}'
  out = []
  for i, rec in enumerate(records):
    try:
      out.append(person_from_json(rec, i, source))
    except BadExampleError as e:
      out.append(e)
  return out


# ----------------------------------------------------------------------------------------------
# gt_valid.mat (Tompson et al.'s validation persons: jnt_missing, pos_gt_src, headboxes_src).


@dataclasses.dataclass
class ValidGroundTruth:
  """The persons of gt_valid.mat, 0-based: keypoints [N, 16, 3] (v = 1 annotated),
  head_boxes [N, 2, 2], release_index [N, 2] 1-based or None."""
  keypoints: np.ndarray
  head_boxes: np.ndarray
  release_index: np.ndarray | None


def load_mat(path: Path, **kwargs) -> dict:
  """scipy.io.loadmat with a message naming the file on malformed content."""
  try:
    return scipy.io.loadmat(str(path), **kwargs)
  except Exception as e:  # scipy raises several unrelated types for broken files
    raise ValueError(f'malformed .mat file {path}: {type(e).__name__}: {e}') from None


def read_gt_valid(path: Path) -> ValidGroundTruth:
  m = load_mat(path)
  for key in ('jnt_missing', 'pos_gt_src', 'headboxes_src'):
    if key not in m:
      raise ValueError(f'malformed {path}: missing variable {key!r}')
  pos = np.asarray(m['pos_gt_src'], np.float64)          # [16, 2, N] 1-based
  missing = np.asarray(m['jnt_missing'])                  # [16, N]
  boxes = np.asarray(m['headboxes_src'], np.float64)      # [2, 2, N] 1-based
  n = pos.shape[-1]
  if pos.shape != (NUM_JOINTS, 2, n) or missing.shape != (NUM_JOINTS, n) or \
      boxes.shape != (2, 2, n):
    raise ValueError(f'malformed {path}: shapes pos_gt_src {pos.shape}, jnt_missing '
                     f'{missing.shape}, headboxes_src {boxes.shape} do not agree')
  kp = np.zeros((n, NUM_JOINTS, 3), np.float32)
  labelled = missing.T == 0
  kp[..., :2] = np.where(labelled[..., None], pos.transpose(2, 0, 1) - 1.0, 0.0)
  kp[..., 2] = labelled
  release = None
  if 'RELEASE_img_index' in m and 'RELEASE_person_index' in m:
    release = np.stack([np.ravel(m['RELEASE_img_index']),
                        np.ravel(m['RELEASE_person_index'])], axis=1).astype(np.int64)
  return ValidGroundTruth(keypoints=kp, head_boxes=boxes.transpose(2, 0, 1).astype(
      np.float32) - 1.0, release_index=release)


def find_gt_valid(manual_dir: Path) -> Path | None:
  for p in (manual_dir / 'annot' / 'gt_valid.mat', manual_dir / 'gt_valid.mat'):
    if p.exists():
      return p
  return None


def _joints_agree(a, b, tol: float = 0.5) -> bool:
  """Keypoints [16, 3] a and b (0-based) put the joints labelled in both at the same places.

  gt_valid.mat has a few coordinates set to 0 (1-based, i.e. -1 here) where the release has
  real values (10 of the 2958 persons), so coordinates equal to -1 are not compared.
  """
  both = (a[:, 2] > 0) & (b[:, 2] > 0)
  cmp = both[:, None] & (a[:, :2] != -1) & (b[:, :2] != -1)
  return bool(cmp.any() and np.all(np.abs(a[:, :2] - b[:, :2])[cmp] <= tol))


def attach_head_boxes(persons: list, gt: ValidGroundTruth, gt_path: Path) -> None:
  """Gives valid.json persons their gt_valid.mat head boxes (same order, checked by joints)."""
  if len(persons) != len(gt.head_boxes):
    raise ValueError(f'{gt_path} has {len(gt.head_boxes)} persons but the validation JSON has '
                     f'{len(persons)} records: they must list the same persons in the same order')
  for i, p in enumerate(persons):
    if isinstance(p, BadExampleError):
      continue
    if not _joints_agree(p.keypoints, gt.keypoints[i]):
      raise ValueError(f'{gt_path} person {i} does not match {p.source}: their joints differ, '
                       'so the two files are not in the same order')
    p.head_box = gt.head_boxes[i]


# ----------------------------------------------------------------------------------------------
# The official release (annolist structure).


def _as_list(x) -> list:
  """MATLAB struct array (squeezed by loadmat) -> list of structs; empty -> []."""
  if x is None:
    return []
  if isinstance(x, np.ndarray):
    return list(x.ravel())
  if isinstance(x, (list, tuple)):
    return list(x)
  return [x]


def _field(struct, name):
  """A struct field, or None when absent or empty."""
  value = getattr(struct, name, None)
  if value is None or (isinstance(value, np.ndarray) and value.size == 0):
    return None
  return value


def _visibility(value) -> float:
  """Release `is_visible` -> v: 2 if marked visible, else 1 (not visible or not recorded)."""
  if value is None:
    return 1.0
  try:
    return 2.0 if int(np.asarray(value).ravel()[0]) == 1 else 1.0
  except (TypeError, ValueError):
    s = str(np.asarray(value).ravel()[0]).strip()   # a few entries are stored as strings
    return 2.0 if s == '1' else 1.0


def annorect_keypoints(rect, what: str) -> np.ndarray | None:
  """annorect.annopoints.point -> keypoints [16, 3] 0-based, or None without annotated points."""
  annopoints = _field(rect, 'annopoints')
  points = _as_list(_field(annopoints, 'point')) if annopoints is not None else []
  if not points:
    return None
  kp = np.zeros((NUM_JOINTS, 3), np.float32)
  for point in points:
    jid = _field(point, 'id')
    try:
      j = int(np.asarray(jid).ravel()[0])
    except (TypeError, ValueError, IndexError):
      raise BadExampleError(f"{what} field 'annopoints.point.id': value {jid!r} is not a joint "
                            'id', 'invalid joint') from None
    if not 0 <= j < NUM_JOINTS:
      raise BadExampleError(f"{what} field 'annopoints.point.id': value {j} is not in "
                            f'0..{NUM_JOINTS - 1}', 'wrong number of joints')
    xy = (_field(point, 'x'), _field(point, 'y'))
    p = _check_joint(xy, f"{what} field 'annopoints.point' joint {j}")
    kp[j] = (p[0] - 1.0, p[1] - 1.0, _visibility(_field(point, 'is_visible')))
  return kp


def annorect_head_box(rect, what: str) -> np.ndarray | None:
  """annorect x1, y1, x2, y2 (1-based) -> [[x1, y1], [x2, y2]] 0-based, or None if absent."""
  values = [_field(rect, k) for k in ('x1', 'y1', 'x2', 'y2')]
  if any(v is None for v in values):
    return None
  box = bad_input.finite_array([float(np.asarray(v).ravel()[0]) for v in values], (4,),
                               f"{what} field 'x1,y1,x2,y2'", 'invalid head box')
  return (box.reshape(2, 2) - 1.0).astype(np.float32)


def annorect_box(rect, what: str) -> tuple[np.ndarray, float] | None:
  """annorect objpos (1-based) and scale -> (center 0-based [2], scale), None if absent."""
  objpos, scale = _field(rect, 'objpos'), _field(rect, 'scale')
  if objpos is None or scale is None:
    return None
  xy = (_field(objpos, 'x'), _field(objpos, 'y'))
  if xy[0] is None or xy[1] is None:
    return None
  center = _check_center([float(np.asarray(v).ravel()[0]) for v in xy], what) - 1.0
  return center.astype(np.float32), _check_scale(scale, what)


def iter_annolist(annolist):
  """Yields (image_index, person_index, annorect) with 0-based indices over an annolist."""
  for i, entry in enumerate(_as_list(annolist)):
    for j, rect in enumerate(_as_list(_field(entry, 'annorect'))):
      yield i, j, rect


def image_name(entry) -> str | None:
  image = _field(entry, 'image')
  name = _field(image, 'name') if image is not None else None
  return None if name is None else str(name)


def read_release(path: Path):
  """The official release .mat -> (annolist list, img_train [N] bool)."""
  m = load_mat(path, struct_as_record=False, squeeze_me=True)
  if 'RELEASE' not in m:
    raise ValueError(f"malformed {path}: no variable 'RELEASE'")
  release = m['RELEASE']
  annolist = _as_list(_field(release, 'annolist'))
  img_train = np.ravel(np.asarray(_field(release, 'img_train')))
  if not annolist or len(img_train) != len(annolist):
    raise ValueError(f'malformed {path}: RELEASE.annolist ({len(annolist)}) and '
                     f'RELEASE.img_train ({len(img_train)}) must be non-empty and equally long')
  return annolist, img_train.astype(bool)


def release_persons(path: Path, gt: ValidGroundTruth | None, notes: collections.Counter):
  """-> {'train': [...], 'validation': [...]} of (Person or BadExampleError) from the release.

  Validation = the gt_valid.mat persons in its order; train = every other person with annotated
  joints in a training image (all of them when `gt` is None). Annotated persons without
  objpos/scale cannot be cropped the hourglass way: they are counted in `notes`.
  """
  annolist, img_train = read_release(path)
  source = path.name
  candidates = {}   # (i, j) -> Person or BadExampleError, persons with joints in train images
  for i, j, rect in iter_annolist(annolist):
    if not img_train[i]:
      continue
    what = f'{source} annolist({i + 1}).annorect({j + 1})'
    try:
      kp = annorect_keypoints(rect, what)
      if kp is None:
        continue
      name = image_name(annolist[i])
      if name is None:
        raise BadExampleError(f"{what}: annolist({i + 1}).image.name is missing",
                              'missing field')
      box = annorect_box(rect, what)
      if box is None:
        notes['annotated persons without objpos/scale left out'] += 1
        continue
      candidates[i, j] = Person(image=name, center=box[0], scale=box[1], keypoints=kp,
                                head_box=annorect_head_box(rect, what), person_index=-1,
                                release_index=(i + 1, j + 1), source=what)
    except BadExampleError as e:
      candidates[i, j] = e
  valid_keys = [] if gt is None else _match_valid(candidates, gt, path)
  valid = []
  for k, key in enumerate(valid_keys):
    p = candidates[key]
    if isinstance(p, Person):
      p = dataclasses.replace(p, person_index=k, head_box=gt.head_boxes[k])
    valid.append(p)
  taken = set(valid_keys)
  train = []
  for key, p in candidates.items():
    if key in taken:
      continue
    if isinstance(p, Person):
      p = dataclasses.replace(p, person_index=len(train))
    train.append(p)
  return {'train': train, 'validation': valid}


def _match_valid(candidates: dict, gt: ValidGroundTruth, release_path: Path) -> list:
  """The release (i, j) of each gt_valid.mat person, in gt order."""
  if gt.release_index is not None:
    keys = [(int(a) - 1, int(b) - 1) for a, b in gt.release_index]
    for k, key in enumerate(keys):
      if key not in candidates:
        raise ValueError(f'gt_valid person {k}: RELEASE index {key[0] + 1}/{key[1] + 1} is not '
                         f'an annotated training person of {release_path.name}')
    return keys
  good = [(key, p) for key, p in candidates.items() if isinstance(p, Person) and
          p.head_box is not None]
  boxes = np.stack([p.head_box.ravel() for _, p in good]) if good else np.zeros((0, 4))
  keys = []
  for k in range(len(gt.head_boxes)):
    near = np.flatnonzero(np.max(np.abs(boxes - gt.head_boxes[k].ravel()), axis=1) <= 0.01)
    hits = [good[n][0] for n in near]
    if len(hits) > 1:   # the same head box twice: the joints decide
      hits = [good[n][0] for n in near if _joints_agree(good[n][1].keypoints, gt.keypoints[k])]
    if len(hits) != 1:
      raise ValueError(f'gt_valid person {k} (head box {gt.head_boxes[k].ravel().tolist()}, '
                       f'0-based) matches {len(hits)} annotated persons of {release_path.name}, '
                       'expected exactly 1')
    keys.append(hits[0])
  return keys


# ----------------------------------------------------------------------------------------------
# Pre-cropping and the tfds builder.


def crop_region(image: np.ndarray, center, scale: float, margin: float, pixels: int):
  """A generous square around the hourglass box, clipped to the image and downscaled so the
  box side has at most `pixels` px (0 = keep resolution).

  Args:
    image: [H, W, 3] uint8.
    center, scale: the hourglass-adjusted box (side = scale * 200 px).
  Returns:
    (crop [h, w, 3] uint8, A [2, 3] float64 original pixels -> crop pixels), or None when the
    square does not overlap the image.
  """
  h, w = image.shape[:2]
  box = scale * 200.0
  half = margin * box / 2.0
  x0, y0 = max(0, math.floor(center[0] - half)), max(0, math.floor(center[1] - half))
  x1, y1 = min(w, math.ceil(center[0] + half) + 1), min(h, math.ceil(center[1] + half) + 1)
  if x1 <= x0 or y1 <= y0:
    return None
  crop = image[y0:y1, x0:x1]
  zoom = 1.0 if pixels <= 0 else min(1.0, pixels / box)
  if zoom >= 1.0:
    return np.ascontiguousarray(crop), np.array([[1.0, 0, -x0], [0, 1.0, -y0]])
  cw, ch = x1 - x0, y1 - y0
  nw, nh = max(1, round(cw * zoom)), max(1, round(ch * zoom))
  crop = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA)
  # Pixel-area resampling keeps pixel edges on pixel edges: u + 0.5 = (x - x0 + 0.5) * nw / cw.
  sx, sy = nw / cw, nh / ch
  return crop, np.array([[sx, 0, (0.5 - x0) * sx - 0.5], [0, sy, (0.5 - y0) * sy - 0.5]])


def encode_jpeg(image_rgb: np.ndarray) -> bytes:
  ok, buf = cv2.imencode('.jpg', cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR),
                         [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
  if not ok:
    raise RuntimeError('JPEG encoding failed')
  return buf.tobytes()


def find_layout(manual_dir: Path) -> str:
  """'json' (SimpleBaseline/HRNet) or 'release' (official .mat)."""
  if (manual_dir / 'annot' / 'train.json').exists() or \
      (manual_dir / 'annot' / 'valid.json').exists():
    return 'json'
  for p in (manual_dir / RELEASE_FILE, manual_dir / 'annot' / RELEASE_FILE):
    if p.exists():
      return 'release'
  raise FileNotFoundError(
      f'no MPII annotations in {manual_dir}: expected annot/train.json and/or annot/valid.json '
      f'(SimpleBaseline/HRNet layout) or {RELEASE_FILE} (official release); see data/README.md')


def read_splits(manual_dir: Path, notes: collections.Counter | None = None) -> dict:
  """manual_dir -> {split: [Person or BadExampleError]} for the splits present; counts of
  persons left out for a stated reason go to `notes`."""
  notes = collections.Counter() if notes is None else notes
  manual_dir = Path(manual_dir)
  gt_path = find_gt_valid(manual_dir)
  gt = read_gt_valid(gt_path) if gt_path is not None else None
  if find_layout(manual_dir) == 'json':
    splits = {}
    for split, name in (('train', 'train.json'), ('validation', 'valid.json')):
      path = manual_dir / 'annot' / name
      if path.exists():
        splits[split] = read_json_split(path)
    if 'validation' in splits and gt is not None:
      attach_head_boxes(splits['validation'], gt, gt_path)
    return splits
  path = manual_dir / RELEASE_FILE
  if not path.exists():
    path = manual_dir / 'annot' / RELEASE_FILE
  splits = release_persons(path, gt, notes)
  if gt is None:
    del splits['validation']   # no definition of the validation persons without gt_valid.mat
  return splits


class HgjaxMpii(tfds.core.GeneratorBasedBuilder):
  """MPII Human Pose single-person examples, pre-cropped around each person."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Download MPII Human Pose (images and annotations) and place them as described in '
      "hgjax's data/README.md: images/ plus annot/{train,valid}.json and annot/gt_valid.mat, "
      f'or images/ plus {RELEASE_FILE} and gt_valid.mat.')

  def __init__(self, *, on_bad_example: str = 'error', crop_margin: float = 1.75,
               crop_pixels: int = 256, num_workers: int = 0, **kwargs):
    """crop_margin: stored square side / hourglass box side (<= 0: store whole images);
    crop_pixels: at most this many px per box side (0 = original resolution);
    num_workers: decoding threads (0 = os.cpu_count())."""
    self.bad = bad_input.BadExamples(on_bad_example)
    self.notes: collections.Counter = collections.Counter()
    self.crop_margin, self.crop_pixels = float(crop_margin), int(crop_pixels)
    self.num_workers = num_workers or os.cpu_count() or 1
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    tensor = tfds.features.Tensor
    return tfds.core.DatasetInfo(
        builder=self,
        description='MPII Human Pose persons (16 joints), 0-based pixel coordinates of the '
                    'original image; image = pre-cropped JPEG, crop_transform maps original '
                    'pixels to its pixels.',
        features=tfds.features.FeaturesDict({
            'image': tensor(shape=(), dtype=np.object_),            # JPEG bytes
            'image_filename': tfds.features.Text(),
            'original_shape': tensor(shape=(2,), dtype=np.int32),  # (height, width)
            'crop_transform': tensor(shape=(2, 3), dtype=np.float64),
            'center': tensor(shape=(2,), dtype=np.float32),
            'scale': tensor(shape=(), dtype=np.float32),
            'keypoints': tensor(shape=(NUM_JOINTS, 3), dtype=np.float32),
            'head_box': tensor(shape=(2, 2), dtype=np.float32),
            'has_head_box': tensor(shape=(), dtype=np.bool_),
            'person_index': tensor(shape=(), dtype=np.int64),
            'release_index': tensor(shape=(2,), dtype=np.int32),
        }),
        disable_shuffling=True,   # keep the annotation order (validation = gt_valid order)
        homepage='http://human-pose.mpi-inf.mpg.de/',
    )

  def _split_generators(self, dl_manager):
    manual_dir = Path(dl_manager.manual_dir)
    self._images = manual_dir / 'images'
    return {split: self._generate_examples(persons)
            for split, persons in read_splits(manual_dir, self.notes).items()}

  def _generate_examples(self, persons):
    # Consecutive persons of one image share one decode; images are decoded in threads.
    groups, last = [], None
    for p in persons:
      name = None if isinstance(p, BadExampleError) else p.image
      if groups and name is not None and name == last:
        groups[-1].append(p)
      else:
        groups.append([p])
      last = name
    with concurrent.futures.ThreadPoolExecutor(self.num_workers) as pool:
      for start in range(0, len(groups), 64):
        for examples in pool.map(self._examples_of_image, groups[start:start + 64]):
          yield from examples

  def _examples_of_image(self, group: list) -> list:
    out = []
    image = None
    for p in group:
      try:
        if isinstance(p, BadExampleError):
          raise p
        if image is None:
          path = self._images / p.image
          data = bad_input.read_image_bytes(path, f"{p.source} field 'image'")
          image = bad_input.decode_image(data, path, p.source)
        out.append((p.person_index, self._example(p, image, data)))
      except BadExampleError as e:
        self.bad.skip_or_raise(e)
    return out

  def _example(self, p: Person, image: np.ndarray, data: bytes) -> dict:
    h, w = image.shape[:2]
    bad_input.check_inside(p.keypoints[:, :2], p.keypoints[:, 2] > 0, w, h,
                           f"{p.source} field 'joints'")
    bad_input.check_inside(p.center[None], np.array([True]), w, h, f"{p.source} field 'center'",
                           item='')
    if self.crop_margin > 0:
      center, scale = hourglass_box(p.center, p.scale)
      region = crop_region(image, center, scale, self.crop_margin, self.crop_pixels)
      if region is None:
        raise BadExampleError(
            f"{p.source} field 'center': value {p.center.tolist()} with scale {p.scale} puts the "
            f'person box outside the {w}x{h} image {p.image!r}', 'person outside image')
      crop, matrix = region
      encoded = encode_jpeg(crop)
    else:
      encoded, matrix = data, np.eye(2, 3)
    return {
        'image': encoded,
        'image_filename': p.image,
        'original_shape': np.array([h, w], np.int32),
        'crop_transform': matrix,
        'center': np.asarray(p.center, np.float32),
        'scale': np.float32(p.scale),
        'keypoints': p.keypoints,
        'head_box': np.zeros((2, 2), np.float32) if p.head_box is None else p.head_box,
        'has_head_box': p.head_box is not None,
        'person_index': p.person_index,
        'release_index': np.asarray(p.release_index, np.int32),
    }
