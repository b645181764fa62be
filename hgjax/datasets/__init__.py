"""Datasets: procedural synthetic people and scenes, MPII, COCO, and their grain pipelines.

`DATASETS` is the one table from `config.dataset.name` to a dataset; nothing else in `hgjax/`
looks at the name. Each entry's loaders import their pipeline module when called (tfds, grain
and OpenCV are slow to import, and a run reads one dataset).
"""

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Dataset:
  """One dataset.

  multi_person: True: whole images with every person, scored by COCO OKS AP
    (`evaluation.multi_person`); False: person crops scored by PCKh (`evaluation.single_person`).
  mpii_format: evaluation also writes the MPII benchmark's `pred` structure.
  train_source(config) -> grain.MapDataset of training examples (`datasets.pipeline` layout).
  eval_data(config) -> multi-person: (images: sequence of uint8 [H, W, 3], image_ids [N], COCO
    ground truth dict/path); single-person: (images uint8 [N, S, S, 3], crop_to_image [N, 2, 3],
    keypoints [N, K, 3], head_boxes [N, 2, 2]).
  """
  multi_person: bool
  mpii_format: bool
  train_source: Callable
  eval_data: Callable


def _synthetic_train(config):
  from hgjax.datasets import synthetic_pipeline
  return synthetic_pipeline.train_source(config)


def _synthetic_eval(config):
  from hgjax.datasets import synthetic_pipeline
  return synthetic_pipeline.eval_data(config)


def _mpii_train(config):
  from hgjax.datasets import mpii_pipeline
  return mpii_pipeline.train_source(config)


def _mpii_eval(config):
  from hgjax.datasets import mpii_pipeline
  return mpii_pipeline.eval_data(config)


def _scenes_train(config):
  from hgjax.datasets import scenes_pipeline
  return scenes_pipeline.train_source(config)


def _scenes_eval(config):
  from hgjax.datasets import scenes_pipeline
  return scenes_pipeline.eval_data(config)


def _coco_train(config):
  from hgjax.datasets import coco_pipeline
  return coco_pipeline.train_source(config)


def _coco_eval(config):
  from hgjax.datasets import coco_pipeline
  return coco_pipeline.eval_data(config)


DATASETS: dict[str, Dataset] = {
    'mpii': Dataset(multi_person=False, mpii_format=True, train_source=_mpii_train,
                    eval_data=_mpii_eval),
    'coco': Dataset(multi_person=True, mpii_format=False, train_source=_coco_train,
                    eval_data=_coco_eval),
    'synthetic': Dataset(multi_person=False, mpii_format=False, train_source=_synthetic_train,
                         eval_data=_synthetic_eval),
    'synthetic_scenes': Dataset(multi_person=True, mpii_format=False,
                                train_source=_scenes_train, eval_data=_scenes_eval),
}


def dataset_for(config) -> Dataset:
  """The dataset of `config.dataset.name`; ValueError naming the valid ones."""
  name = config.dataset.name
  if name not in DATASETS:
    raise ValueError(f'config.dataset.name={name!r} is not one of '
                     f'{", ".join(map(repr, DATASETS))}')
  return DATASETS[name]
