"""MPII examples for training (augmented person crops) and evaluation (fixed crops + ground truth).

Reads the tfds dataset `hgjax_mpii` (see `hgjax.datasets.mpii`) with `tfds.data_source`, so no
TensorFlow is involved. The stored image is a pre-crop; its `crop_transform` (original ->
stored pixels) is folded into the augmentation matrix, so one `cv2.warpAffine` takes the stored
JPEG straight to the network input.
"""

import concurrent.futures

import cv2
import grain
import numpy as np
import tensorflow_datasets as tfds

from hgjax import skeleton
from hgjax import transforms
from hgjax.datasets import augment
from hgjax.datasets import mpii

DATASET = 'hgjax_mpii'


def open_split(data_dir, split: str):
  """The random-access tfds source of `split` of hgjax_mpii under `data_dir` (raises a clear
  error if it was not built)."""
  try:
    return tfds.data_source(DATASET, split=split, data_dir=str(data_dir))
  except Exception as e:   # tfds raises assorted types for a missing dataset or split
    raise FileNotFoundError(
        f'cannot read split {split!r} of {DATASET} under data_dir={str(data_dir)!r} '
        f'({type(e).__name__}: {e}); build it with `python -m hgjax.datasets.build mpii '
        f'--manual_dir DIR --data_dir {data_dir}` (see data/README.md)') from e


def data_source(config, split: str):
  """`open_split` of `config.dataset.data_dir`."""
  return open_split(config.dataset.data_dir, split)


def stored_to_input(example, input_from_original) -> np.ndarray:
  """The map from stored-image pixels to network-input pixels, [2, 3]."""
  return augment.compose(input_from_original,
                         transforms.invert_affine(example['crop_transform']))


def decode(example) -> np.ndarray:
  name = example['image_filename']
  name = name.decode() if isinstance(name, bytes) else name
  return augment.decode_jpeg(example['image'], f'{DATASET} image of {name!r}')


class TrainTransform(grain.transforms.RandomMap):
  """Stored example -> {'image': uint8 [S, S, 3], 'keypoints': float32 [P, 16, 3]} in network
  input pixels, augmented (scale, rotation, translation, flip with joint swap, colour)."""

  def __init__(self, config):
    self.size = config.dataset.image_size
    self.max_people = config.dataset.max_people
    self.aug = config.augment
    self.flip_perm = skeleton.flip_for(mpii.NUM_JOINTS)

  def random_map(self, example, rng: np.random.Generator):
    cv2.setNumThreads(1)   # grain already runs one element per thread
    center, scale = mpii.hourglass_box(example['center'], float(example['scale']))
    matrix, flipped = augment.random_affine(rng, center, scale, self.size, self.aug)
    image = augment.warp_image(decode(example), stored_to_input(example, matrix),
                               (self.size, self.size))
    image = augment.color_jitter(image, rng, self.aug.color_jitter)
    kp = augment.warp_keypoints(example['keypoints'], matrix,
                                self.flip_perm if flipped else None)
    return {'image': image, 'keypoints': augment.pad_people(kp[None], self.max_people)}


def train_source(config) -> grain.MapDataset:
  """Augmented training examples of `config.dataset.train_split`; the augmentation of element i
  is a function of (config.seed, i) (grain's `random_map`), and i >= N (N stored persons) is
  stored person i mod N with a fresh augmentation: the index `pipeline.train_iterator` reads
  in epoch e is e * N + (shuffled index)."""
  ds = grain.MapDataset.source(data_source(config, config.dataset.train_split))
  return ds.random_map(TrainTransform(config), seed=config.seed)


def eval_crop(example, size: int) -> tuple[np.ndarray, np.ndarray]:
  """The un-augmented network input of one stored example: (image uint8 [S, S, 3],
  crop_to_image [2, 3] from input pixels to original-image pixels)."""
  center, scale = mpii.hourglass_box(example['center'], float(example['scale']))
  matrix = transforms.crop_transform(center, scale, 0.0, (size, size))
  image = augment.warp_image(decode(example), stored_to_input(example, matrix), (size, size))
  return image, transforms.invert_affine(matrix)


def eval_data(config):
  """The evaluation split as arrays, in person_index (gt_valid.mat) order.

  Returns:
    images uint8 [N, S, S, 3], crop_to_image float64 [N, 2, 3] (input -> original pixels),
    keypoints float32 [N, 16, 3] original-image pixels (v = 0 not annotated),
    head_boxes float32 [N, 2, 2] [[x1, y1], [x2, y2]] original pixels.
    N = config.eval.num_examples (-1: the whole split).
  """
  source = data_source(config, config.dataset.eval_split)
  n = len(source) if config.eval.num_examples < 0 else min(config.eval.num_examples,
                                                            len(source))
  size = config.dataset.image_size
  examples = [source[i] for i in range(n)]
  examples.sort(key=lambda e: int(e['person_index']))
  missing = [int(e['person_index']) for e in examples if not e['has_head_box']]
  if missing:
    raise ValueError(f'{DATASET} split {config.dataset.eval_split!r} has no head boxes for '
                     f'{len(missing)} persons (e.g. {missing[:5]}): PCKh needs them; build it '
                     'with gt_valid.mat present (see data/README.md)')
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    crops = list(pool.map(lambda e: eval_crop(e, size), examples))
  images = np.stack([c[0] for c in crops]) if crops else np.zeros((0, size, size, 3), np.uint8)
  crop_to_image = np.stack([c[1] for c in crops]) if crops else np.zeros((0, 2, 3))
  keypoints = np.stack([e['keypoints'] for e in examples]).astype(np.float32) if examples \
      else np.zeros((0, mpii.NUM_JOINTS, 3), np.float32)
  head_boxes = np.stack([e['head_box'] for e in examples]).astype(np.float32) if examples \
      else np.zeros((0, 2, 2), np.float32)
  return images, crop_to_image, keypoints, head_boxes
