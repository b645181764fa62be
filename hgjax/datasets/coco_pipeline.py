"""COCO from `hgjax_coco` for bottom-up methods: augmented training examples and the evaluation
split (original images and their annotations as a COCO ground-truth dict).

Each training example: image uint8 [S, S, 3], keypoints float32 [P, 17, 3] (x, y, v) in
network-input pixels with P = config.dataset.max_people (padding rows have v = 0), mask
float32 [h, w] at heatmap resolution (h = S / stride), 1 = supervise, 0 = crowd regions, people
without keypoints, the joints of people beyond P (explicit truncation), and everything outside
the source image.
"""

import cv2
import grain
import numpy as np
import tensorflow_datasets as tfds

from hgjax import skeleton
from hgjax.datasets import augment
from hgjax.datasets import coco

DATASET = 'hgjax_coco'


def data_source(config, split: str):
  """The random-access tfds source of `split` (raises a clear error if it was not built)."""
  try:
    return tfds.data_source(DATASET, split=split, data_dir=config.dataset.data_dir)
  except Exception as e:   # tfds raises assorted types for a missing dataset or split
    raise FileNotFoundError(
        f'cannot read split {split!r} of {DATASET} under data_dir={config.dataset.data_dir!r} '
        f'({type(e).__name__}: {e}); build it with `python -m hgjax.datasets.build coco '
        f'--manual_dir DIR --data_dir {config.dataset.data_dir}` (see data/README.md)') from e


def select_people(keypoints, size: int) -> np.ndarray:
  """Indices of the people [N, K, 3] with a labelled joint inside the S x S input, in order."""
  kp = np.asarray(keypoints)
  inside = (kp[..., 2] > 0) & np.all((kp[..., :2] >= -0.5) & (kp[..., :2] <= size - 0.5),
                                     axis=-1)
  return np.flatnonzero(inside.any(axis=-1))


def mask_out_joints(mask: np.ndarray, keypoints, radius: int) -> None:
  """Sets mask [h, w] to 0 in discs of `radius` cells around the labelled joints of keypoints
  [N, K, 3] (heatmap-grid coordinates): people left out by the truncation must not be taught
  as background, and discs (not boxes) keep the kept people around them supervised."""
  for x, y, v in np.asarray(keypoints, np.float64).reshape(-1, 3):
    if v > 0:
      cv2.circle(mask, (int(round(x)), int(round(y))), radius, 0.0, -1)


class TrainTransform(grain.transforms.RandomMap):
  """Stored COCO image -> augmented training example (see the module docstring)."""

  def __init__(self, config):
    self.size = config.dataset.image_size
    self.stride = config.dataset.heatmap_stride
    self.max_people = config.dataset.max_people
    self.aug = config.augment
    self.flip_perm = skeleton.flip_for(coco.NUM_JOINTS)
    # Heatmap cells around a truncated person's joint left unsupervised: the Gaussian's 3 sigma.
    self.truncation_radius = int(np.ceil(3 * config.targets.sigma))

  def random_map(self, example, rng: np.random.Generator):
    cv2.setNumThreads(1)   # grain already runs one element per thread
    height, width = (int(v) for v in example['original_shape'])
    name = example['image_filename']
    image = augment.decode_jpeg(example['image'], f'{DATASET} image {name!r}')
    # The whole image, as a square box of its longer side, centred.
    center = ((width - 1) / 2.0, (height - 1) / 2.0)
    matrix, flipped = augment.random_affine(rng, center, max(width, height) / 200.0, self.size,
                                            self.aug)
    image = augment.color_jitter(augment.warp_image(image, matrix, (self.size, self.size)),
                                 rng, self.aug.color_jitter)
    grid = self.size // self.stride
    to_grid = augment.compose(augment.grid_matrix(self.stride), matrix)
    if example['ignore_mask']:
      ignore = cv2.imdecode(np.frombuffer(example['ignore_mask'], np.uint8),
                            cv2.IMREAD_GRAYSCALE)
      supervise = (ignore == 0).astype(np.uint8)
    else:
      supervise = np.ones((height, width), np.uint8)
    mask = augment.warp_mask(supervise, to_grid, (grid, grid))
    people = (example['people/num_keypoints'] > 0) & (example['people/iscrowd'] == 0)
    kp = augment.warp_keypoints(example['people/keypoints'][people], matrix,
                                self.flip_perm if flipped else None)
    chosen = select_people(kp, self.size)
    if len(chosen) > self.max_people:
      # Explicit truncation: the first max_people people are kept; the others are unsupervised.
      left_out = augment.warp_keypoints(kp[chosen[self.max_people:]],
                                        augment.grid_matrix(self.stride))
      mask_out_joints(mask, left_out, self.truncation_radius)
    return {'image': image, 'keypoints': augment.pad_people(kp[chosen], self.max_people),
            'mask': mask}


def train_source(config) -> grain.MapDataset:
  """COCO training examples; element i depends only on (config.seed, i): i >= N (N stored
  images) is image i mod N with a fresh augmentation (epoch e of `pipeline.train_iterator` reads
  e * N + shuffled index)."""
  d = config.dataset
  ds = grain.MapDataset.source(data_source(config, d.train_split))
  return ds.random_map(TrainTransform(config), seed=config.seed)


class EvalImages:
  """The original RGB images of a tfds COCO split, decoded on access: len() and [i] -> uint8
  [H, W, 3] (a validation split of 5000 images does not fit in memory decoded)."""

  def __init__(self, source):
    self.source = source

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, i: int) -> np.ndarray:
    example = self.source[i]
    return augment.decode_jpeg(example['image'],
                               f'{DATASET} image {example["image_filename"]!r}')


def coco_ground_truth(source) -> dict:
  """The person_keypoints annotation dict (COCO JSON schema) of every stored image of a tfds
  COCO split: every annotation as stored (crowds and people without keypoints included, so
  pycocotools ignores what the official evaluation ignores)."""
  images, annotations = [], []
  for i in range(len(source)):
    ex = source[i]
    height, width = (int(v) for v in ex['original_shape'])
    image_id = int(ex['image_id'])
    images.append({'id': image_id, 'file_name': str(ex['image_filename']), 'width': width,
                   'height': height})
    for j in range(len(ex['people/id'])):
      kp = np.asarray(ex['people/keypoints'][j], np.float64).reshape(-1)
      annotations.append({
          'id': int(ex['people/id'][j]), 'image_id': image_id, 'category_id': 1,
          'iscrowd': int(ex['people/iscrowd'][j]), 'area': float(ex['people/area'][j]),
          'bbox': [float(v) for v in ex['people/bbox'][j]],
          'keypoints': [float(v) if k % 3 < 2 else int(v) for k, v in enumerate(kp)],
          'num_keypoints': int(ex['people/num_keypoints'][j])})
  category = {'id': 1, 'name': 'person', 'supercategory': 'person',
              'keypoints': list(skeleton.COCO_JOINTS),
              'skeleton': [[a + 1, b + 1] for a, b in skeleton.COCO_EDGES]}
  return {'images': images, 'annotations': annotations, 'categories': [category]}


def eval_data(config):
  """(images: `EvalImages` of config.dataset.eval_split, image_ids [N] int64, COCO GT dict);
  the first config.eval.num_examples images when that is >= 0."""
  source = data_source(config, config.dataset.eval_split)
  n = len(source)
  if config.eval.num_examples >= 0:
    n = min(n, config.eval.num_examples)
    source = _Head(source, n)
  ids = np.array([int(source[i]['image_id']) for i in range(n)], np.int64)
  return EvalImages(source), ids, coco_ground_truth(source)


class _Head:
  """The first n elements of a random-access source."""

  def __init__(self, source, n: int):
    self.source, self.n = source, n

  def __len__(self) -> int:
    return self.n

  def __getitem__(self, i: int):
    if not 0 <= i < self.n:
      raise IndexError(i)
    return self.source[i]
