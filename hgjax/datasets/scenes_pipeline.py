"""Synthetic multi-person scenes (`synthetic.scene_example`) for Associative Embedding.

Training: a grain MapDataset of examples in the multi-person batch layout, generated on the fly
at the network input size (no further augmentation: every index is a fresh random scene, and a
horizontal flip would contradict the figures' side colours, left = warm hues). The set is fixed,
config.dataset.synthetic_num_train scenes: every epoch shows the same scenes, reshuffled:
  image uint8 [S, S, 3]; keypoints float32 [P, 17, 3] (x, y, v) in input pixels, P =
  config.dataset.max_people, padding rows v = 0; mask float32 [h, w] of ones (h = S / stride).
The mask needs no holes: a figure with no labelled joint has every joint outside the image, so a
zero target on its visible pixels is the right one.

Evaluation: held-out scenes of `config.dataset.eval_split` with their ground truth as a COCO
keypoint annotation dict, so pycocotools scores them exactly as it scores COCO.
"""

import json
from pathlib import Path

import grain
import numpy as np

from hgjax import skeleton
from hgjax.datasets import augment
from hgjax.datasets import synthetic


class SceneExample(grain.transforms.Map):
  """index -> one synthetic scene in the multi-person training layout."""

  def __init__(self, seed: int, split: str, image_size: int, max_people: int, stride: int,
               heights: tuple):
    self.seed, self.split = seed, split
    self.image_size, self.max_people = image_size, max_people
    self.grid = image_size // stride
    self.heights = heights

  def map(self, index):
    ex = synthetic.scene_example(self.seed, self.split, int(index), self.image_size,
                                 self.max_people, self.heights)
    return {'image': ex['image'],
            'keypoints': augment.pad_people(ex['keypoints'], self.max_people),
            'mask': np.ones((self.grid, self.grid), np.float32)}


def train_source(config) -> grain.MapDataset:
  """Training scenes of `config.dataset.train_split`; element i is a function of (seed, i)."""
  d = config.dataset
  return grain.MapDataset.range(d.synthetic_num_train).map(
      SceneExample(config.seed, d.train_split, d.image_size, d.max_people, d.heatmap_stride,
                   scene_heights(config)))


def scene_heights(config) -> tuple:
  """(min, max) standing height of scene figures, fractions of the image side."""
  return (config.dataset.scene_height_min, config.dataset.scene_height_max)


def coco_ground_truth(examples, image_ids) -> dict:
  """COCO keypoint annotations (the person_keypoints JSON schema) of synthetic scenes.

  Args:
    examples: `synthetic.scene_example` dicts (image, keypoints [P, 17, 3], bbox [P, 4], area
      [P]), in input pixels.
    image_ids: one int id per example.
  Returns:
    dict with images, annotations (keypoints of unlabelled joints written as 0, 0, 0; area =
    visible figure pixels, the counterpart of COCO's segmentation area that OKS scales by) and
    the person category with the 17 COCO joint names and skeleton (1-based, as COCO has it).
  """
  images, annotations = [], []
  for image_id, ex in zip(image_ids, examples, strict=True):
    h, w = ex['image'].shape[:2]
    images.append({'id': int(image_id), 'file_name': f'{int(image_id):012d}.png',
                   'width': int(w), 'height': int(h)})
    for kp, box, area in zip(ex['keypoints'], ex['bbox'], ex['area'], strict=True):
      kp = np.asarray(kp, np.float64).copy()
      labelled = kp[:, 2] > 0
      kp[~labelled] = 0.0
      annotations.append({
          'id': len(annotations) + 1, 'image_id': int(image_id), 'category_id': 1,
          'iscrowd': 0, 'bbox': [float(v) for v in box], 'area': float(area),
          'keypoints': [float(v) if i % 3 < 2 else int(v)
                        for i, v in enumerate(kp.reshape(-1))],
          'num_keypoints': int(labelled.sum())})
  category = {'id': 1, 'name': 'person', 'supercategory': 'person',
              'keypoints': list(skeleton.COCO_JOINTS),
              'skeleton': [[a + 1, b + 1] for a, b in skeleton.COCO_EDGES]}
  return {'info': {'description': 'hgjax synthetic scenes'}, 'images': images,
          'annotations': annotations, 'categories': [category]}


def write_ground_truth(path, gt: dict) -> Path:
  """Writes a COCO annotation dict as JSON; returns the path."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(gt))
  return path


def eval_data(config):
  """The held-out scenes: (images uint8 [N, S, S, 3], image_ids [N] int, COCO GT dict).

  N = config.dataset.synthetic_num_eval, or config.eval.num_examples if smaller and >= 0;
  image ids are index + 1.
  """
  d = config.dataset
  n = d.synthetic_num_eval
  if config.eval.num_examples >= 0:
    n = min(n, config.eval.num_examples)
  examples = [synthetic.scene_example(config.seed, d.eval_split, i, d.image_size, d.max_people,
                                      scene_heights(config)) for i in range(n)]
  ids = np.arange(1, n + 1)
  images = (np.stack([e['image'] for e in examples]) if examples
            else np.zeros((0, d.image_size, d.image_size, 3), np.uint8))
  return images, ids, coco_ground_truth(examples, ids)
