"""Procedural single-person examples (`synthetic.person_example`): the embedded default dataset.

Training: element i of config.dataset.train_split, generated on the fly (image uint8 [S, S, 3],
keypoints float32 [1, 16, 3] (x, y, v) in input pixels). Evaluation: config.dataset.
synthetic_num_eval held-out examples of config.dataset.eval_split with their head boxes, so the
MPII PCKh protocol applies unchanged.
"""

import grain
import numpy as np

from hgjax.datasets import synthetic


class SyntheticPerson(grain.transforms.Map):
  """index -> one single-person synthetic example in training layout."""

  def __init__(self, seed: int, split: str, image_size: int):
    self.seed, self.split, self.image_size = seed, split, image_size

  def map(self, index):
    ex = synthetic.person_example(self.seed, self.split, int(index), self.image_size)
    return {'image': ex['image'], 'keypoints': ex['keypoints'][None].astype(np.float32)}


def train_source(config) -> grain.MapDataset:
  """The training examples of config.dataset.train_split; element i is a function of (seed, i)."""
  d = config.dataset
  return grain.MapDataset.range(d.synthetic_num_train).map(
      SyntheticPerson(config.seed, d.train_split, d.image_size))


def eval_data(config):
  """(images, crop_to_image, keypoints, head_boxes) of the held-out synthetic split."""
  d = config.dataset
  exs = [synthetic.person_example(config.seed, d.eval_split, i, d.image_size)
         for i in range(d.synthetic_num_eval)]
  identity = np.tile(np.eye(2, 3, dtype=np.float64), (len(exs), 1, 1))
  return (np.stack([e['image'] for e in exs]), identity,
          np.stack([e['keypoints'] for e in exs]).astype(np.float32),
          np.stack([e['head_box'] for e in exs]).astype(np.float32))
