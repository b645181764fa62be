"""Synthetic scenes for AE: training layout, and COCO ground truth that pycocotools accepts."""

import json

import numpy as np
import pytest

from experiments import synthetic_ae
from hgjax.datasets import scenes_pipeline
from hgjax.datasets import synthetic
from hgjax.evaluation import coco_eval


def _config():
  c = synthetic_ae.get_config()
  c.dataset.image_size = 64
  c.dataset.max_people = 5
  c.dataset.synthetic_num_eval = 12
  return c


def test_training_examples_layout_and_determinism():
  config = _config()
  source = scenes_pipeline.train_source(config)
  ex = source[3]
  assert ex['image'].shape == (64, 64, 3) and ex['image'].dtype == np.uint8
  assert ex['keypoints'].shape == (5, 17, 3) and ex['keypoints'].dtype == np.float32
  assert ex['mask'].shape == (16, 16) and np.all(ex['mask'] == 1)
  scene = synthetic.scene_example(config.seed, 'train', 3, 64, 5,
                                  scenes_pipeline.scene_heights(config))
  n = len(scene['keypoints'])
  np.testing.assert_array_equal(ex['keypoints'][:n], scene['keypoints'])
  assert np.all(ex['keypoints'][n:] == 0)                       # padding: v = 0
  np.testing.assert_array_equal(source[3]['image'], ex['image'])


def test_ground_truth_scores_itself_perfectly(tmp_path):
  """The GT people, submitted as results, get AP 1 from pycocotools; unlabelled joints are
  written as zeros and people without labelled joints are ignored by COCOeval."""
  images, ids, gt = scenes_pipeline.eval_data(_config())
  assert images.shape == (12, 64, 64, 3) and list(ids) == list(range(1, 13))
  path = scenes_pipeline.write_ground_truth(tmp_path / 'gt.json', gt)
  loaded = json.loads(path.read_text())
  assert loaded == gt
  for a in gt['annotations']:
    kp = np.array(a['keypoints']).reshape(17, 3)
    assert a['num_keypoints'] == (kp[:, 2] > 0).sum()
    assert np.all(kp[kp[:, 2] == 0] == 0)
  kps = np.array([a['keypoints'] for a in gt['annotations']], np.float64).reshape(-1, 17, 3)
  results = coco_eval.results_from_keypoints([a['image_id'] for a in gt['annotations']], kps,
                                             np.ones(len(kps)))
  stats = coco_eval.coco_keypoint_eval(path, results)
  assert stats['AP'] == pytest.approx(1.0) and stats['AR'] == pytest.approx(1.0)
  # The same through the in-memory COCO the evaluator builds from the dict.
  assert coco_eval.coco_keypoint_eval(coco_eval.load_coco(gt), results)['AP'] == pytest.approx(1.0)
  # Moving every prediction by 2 px costs AP: the areas make OKS strict for small figures.
  shifted = [dict(r, keypoints=(np.array(r['keypoints']) + [2, 0, 0] * 17).tolist())
             for r in results]
  assert coco_eval.coco_keypoint_eval(path, shifted)['AP'] < 0.9
