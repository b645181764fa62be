"""COCO 2017 person keypoints: annotation reader and the tfds builder `hgjax_coco`.

manual_dir layout: `annotations/person_keypoints_{train,val}2017.json`, `train2017/`,
`val2017/` (a split whose JSON is absent is not built). One example per image, holding every
person annotation of the image as in the JSON (`people/*`, crowd regions and people without
keypoints included) and an ignore mask of crowd regions and of people with no keypoints
(pycocotools polygon/RLE decoding), stored as a PNG (1 = ignore; empty bytes = nothing ignored).
The image bytes are the original file, checked by a full decode at build time.

Training (train2017) keeps the images with at least one person annotation (the usual choice for
bottom-up training; the others are counted and reported); validation keeps every image, as the
COCO keypoint evaluation does. Images with more than `max_people` annotated people are kept
whole; the pipeline truncates explicitly.
"""

import collections
import concurrent.futures
import os
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import tensorflow_datasets as tfds

from hgjax.datasets import bad_input
from hgjax.datasets.bad_input import BadExampleError
from hgjax.datasets.mpii import load_json

NUM_JOINTS = 17
SPLITS = {'train': 'train2017', 'validation': 'val2017'}
MAX_PEOPLE = 30   # the AE papers' cap; only reported here, the pipeline truncates


def annotation_file(manual_dir: Path, folder: str) -> Path:
  return Path(manual_dir) / 'annotations' / f'person_keypoints_{folder}.json'


def _check_annotation(ann, image, what: str) -> dict:
  """Validates one person annotation; returns its arrays (keypoints [17, 3], bbox [4], ...)."""
  for key in ('keypoints', 'bbox', 'iscrowd'):
    if key not in ann:
      raise BadExampleError(f"{what}: missing field '{key}'", 'missing field')
  kp = ann['keypoints']
  if not isinstance(kp, list) or len(kp) != 3 * NUM_JOINTS:
    n = len(kp) if isinstance(kp, list) else type(kp).__name__
    raise BadExampleError(f"{what} field 'keypoints': has {n} values, expected "
                          f'{3 * NUM_JOINTS} ({NUM_JOINTS} joints x (x, y, v))',
                          'wrong number of joints')
  kp = bad_input.finite_array(kp, (3 * NUM_JOINTS,), f"{what} field 'keypoints'",
                              'invalid keypoints').reshape(NUM_JOINTS, 3)
  labelled = kp[:, 2] > 0
  width, height = image.get('width'), image.get('height')
  if isinstance(width, (int, float)) and isinstance(height, (int, float)):
    bad_input.check_inside(kp[:, :2], labelled, width, height, f"{what} field 'keypoints'")
  if not np.all(np.isin(kp[:, 2], (0, 1, 2))):
    raise BadExampleError(f"{what} field 'keypoints': visibility values "
                          f'{sorted(set(kp[:, 2].tolist()))} are not in {{0, 1, 2}}',
                          'invalid keypoints')
  bbox = bad_input.finite_array(ann['bbox'], (4,), f"{what} field 'bbox'", 'invalid bbox')
  if bbox[2] < 0 or bbox[3] < 0:
    raise BadExampleError(f"{what} field 'bbox': value {ann['bbox']!r} has a negative size",
                          'invalid bbox')
  num = ann.get('num_keypoints', int(labelled.sum()))   # optional in COCO-like files
  area = ann.get('area', float(bbox[2] * bbox[3]))
  return {'keypoints': kp.astype(np.float32), 'bbox': bbox.astype(np.float32),
          'area': np.float32(area), 'iscrowd': int(bool(ann['iscrowd'])),
          'num_keypoints': int(num), 'id': int(ann.get('id', -1))}


def ignore_mask(annotations: list, height: int, width: int) -> np.ndarray | None:
  """uint8 [H, W] union of crowd regions and of people without keypoints (1 = ignore), or None
  when nothing is ignored. Segmentations (polygons, RLE) are decoded by pycocotools, as
  `COCO.annToMask` does; an annotation without one falls back to its bbox."""
  mask = None
  for ann in annotations:
    if not (ann['iscrowd'] or ann['num_keypoints'] == 0):
      continue
    segm = ann.get('segmentation')
    if not segm:
      x, y, w, h = ann['bbox']
      segm = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    if isinstance(segm, list):   # polygons
      rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    elif isinstance(segm.get('counts'), list):   # uncompressed RLE
      rle = mask_utils.frPyObjects(segm, height, width)
    else:
      rle = segm
    m = mask_utils.decode(rle)
    mask = m if mask is None else np.maximum(mask, m)
  return mask


class ImageRecord:
  """One image of the JSON and its person annotations (validated lazily in the builder)."""

  def __init__(self, image: dict, annotations: list, what: str):
    self.image, self.annotations, self.what = image, annotations, what


def read_split(path: Path) -> list:
  """person_keypoints_*.json -> list of ImageRecord (JSON image order) or BadExampleError."""
  data = load_json(path)
  if not isinstance(data, dict) or not isinstance(data.get('images'), list) or \
      not isinstance(data.get('annotations'), list):
    raise ValueError(f"malformed annotation file {path}: expected an object with lists "
                     "'images' and 'annotations'")
  by_image = collections.defaultdict(list)
  for ann in data['annotations']:
    if not isinstance(ann, dict) or 'image_id' not in ann:
      raise ValueError(f"malformed annotation file {path}: annotation {ann!r} has no "
                       "'image_id'")
    if ann.get('category_id', 1) == 1:
      by_image[ann['image_id']].append(ann)
  records, known = [], set()
  for i, image in enumerate(data['images']):
    if not isinstance(image, dict) or not all(k in image for k in ('id', 'file_name')):
      records.append(BadExampleError(f"{path.name} images[{i}]: value {image!r} lacks 'id' or "
                                     "'file_name'", 'missing field'))
      continue
    known.add(image['id'])
    what = f"{path.name} image {image['id']} ({image['file_name']!r})"
    records.append(ImageRecord(image, by_image.get(image['id'], []), what))
  orphans = sorted(set(by_image) - known)
  if orphans:
    raise ValueError(f"malformed annotation file {path}: annotations refer to image ids "
                     f"{orphans[:5]} that are not in 'images'")
  return records


class HgjaxCoco(tfds.core.GeneratorBasedBuilder):
  """COCO 2017 person keypoints, one example per image, all people of the image."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Download COCO 2017 train/val images and annotations and place them as described in '
      "hgjax's data/README.md: annotations/person_keypoints_{train,val}2017.json, train2017/, "
      'val2017/.')

  def __init__(self, *, on_bad_example: str = 'error', num_workers: int = 0, **kwargs):
    self.bad = bad_input.BadExamples(on_bad_example)
    self.notes: collections.Counter = collections.Counter()
    self.num_workers = num_workers or os.cpu_count() or 1
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    tensor = tfds.features.Tensor
    return tfds.core.DatasetInfo(
        builder=self,
        description='COCO 2017 person keypoints (17 joints): every person annotation of an '
                    'image as in the JSON, plus an ignore mask (PNG, 1 = ignore) of crowd '
                    'regions and people without keypoints.',
        features=tfds.features.FeaturesDict({
            'image': tensor(shape=(), dtype=np.object_),            # original JPEG bytes
            'image_id': tensor(shape=(), dtype=np.int64),
            'image_filename': tfds.features.Text(),
            'original_shape': tensor(shape=(2,), dtype=np.int32),  # (height, width)
            'people/keypoints': tensor(shape=(None, NUM_JOINTS, 3), dtype=np.float32),
            'people/bbox': tensor(shape=(None, 4), dtype=np.float32),
            'people/area': tensor(shape=(None,), dtype=np.float32),
            'people/iscrowd': tensor(shape=(None,), dtype=np.int32),
            'people/num_keypoints': tensor(shape=(None,), dtype=np.int32),
            'people/id': tensor(shape=(None,), dtype=np.int64),
            'ignore_mask': tensor(shape=(), dtype=np.object_),      # PNG bytes or b''
        }),
        disable_shuffling=True,   # keep the JSON image order
        homepage='https://cocodataset.org/',
    )

  def _split_generators(self, dl_manager):
    manual_dir = Path(dl_manager.manual_dir)
    splits = {}
    for split, folder in SPLITS.items():
      path = annotation_file(manual_dir, folder)
      if path.exists():
        splits[split] = self._generate_examples(read_split(path), manual_dir / folder,
                                                split == 'train')
    if not splits:
      raise FileNotFoundError(
          f'no COCO annotations in {manual_dir}: expected annotations/person_keypoints_'
          '{train,val}2017.json (see data/README.md)')
    return splits

  def _generate_examples(self, records: list, folder: Path, need_people: bool):
    # tfds writes examples sorted by key (shuffling disabled): the key is the JSON position.
    keyed = list(enumerate(records))
    if need_people:
      kept = [(k, r) for k, r in keyed if isinstance(r, BadExampleError) or r.annotations]
      if len(kept) < len(keyed):
        self.notes[f'{folder.name}: images without people left out'] += len(keyed) - len(kept)
      keyed = kept
    with concurrent.futures.ThreadPoolExecutor(self.num_workers) as pool:
      for start in range(0, len(keyed), 64):
        for example in pool.map(lambda kr: self._example(*kr, folder), keyed[start:start + 64]):
          if example is not None:
            yield example

  def _example(self, key: int, record, folder: Path):
    try:
      if isinstance(record, BadExampleError):
        raise record
      return key, self._checked_example(record, folder)
    except BadExampleError as e:
      self.bad.skip_or_raise(e)
      return None

  def _checked_example(self, record: ImageRecord, folder: Path) -> dict:
    image, what = record.image, record.what
    people = [_check_annotation(a, image, f"{what} annotation {a.get('id')}")
              for a in record.annotations]
    path = folder / str(image['file_name'])
    data = bad_input.read_image_bytes(path, f"{what} field 'file_name'")
    bad_input.decode_image(data, path, what, reduced=True)
    height, width = image.get('height'), image.get('width')
    if (width, height) != bad_input.image_size(data):
      real = bad_input.image_size(data)
      raise BadExampleError(f"{what} fields 'width', 'height': values {width}, {height} do not "
                            f'match the image file ({real[0]}x{real[1]} px)',
                            'image size mismatch')
    with_kp = sum(1 for p in people if p['num_keypoints'] > 0 and not p['iscrowd'])
    if with_kp > MAX_PEOPLE:
      self.notes[f'{folder.name}: images with more than {MAX_PEOPLE} people (the pipeline '
                 'keeps the first ones)'] += 1
    mask = ignore_mask([dict(a, **p) for a, p in zip(record.annotations, people, strict=True)],
                       height, width)
    mask_png = b'' if mask is None else cv2.imencode('.png', mask)[1].tobytes()

    def stack(key, dtype, shape):
      return np.array([p[key] for p in people], dtype).reshape(shape)
    n = len(people)
    return {
        'image': data,
        'image_id': int(image['id']),
        'image_filename': str(image['file_name']),
        'original_shape': np.array([height, width], np.int32),
        'people/keypoints': stack('keypoints', np.float32, (n, NUM_JOINTS, 3)),
        'people/bbox': stack('bbox', np.float32, (n, 4)),
        'people/area': stack('area', np.float32, (n,)),
        'people/iscrowd': stack('iscrowd', np.int32, (n,)),
        'people/num_keypoints': stack('num_keypoints', np.int32, (n,)),
        'people/id': stack('id', np.int64, (n,)),
        'ignore_mask': mask_png,
    }
