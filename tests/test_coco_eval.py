"""COCO keypoint evaluation against the reference stats of the shared data README (section 5)."""

import json

import numpy as np
import pytest

from hgjax.evaluation import coco_eval

# data README section 5: COCOeval.stats for test_coco.shared.json + example_coco_preds.
REFERENCE = (0.8377, 0.9857, 0.8713, 0.6485, 0.9538, 0.85, 1.0, 0.875, 0.6667, 0.96)


@pytest.fixture(scope='module')
def paths(shared_data):
  return {
      'gt': shared_data / 'mmpose/tests/data/coco/test_coco.shared.json',
      'pred': shared_data / 'xtcocoapi/annotations/example_coco_preds.shared.json',
  }


def test_reference_stats(paths):
  results = json.loads(paths['pred'].read_text())
  stats = coco_eval.coco_keypoint_eval(paths['gt'], results)
  assert list(stats) == list(coco_eval.STAT_NAMES)
  np.testing.assert_allclose(list(stats.values()), REFERENCE, rtol=0, atol=1e-4)
  # The caller's dicts are not modified (pycocotools' loadRes adds fields to what it gets).
  assert results == json.loads(paths['pred'].read_text())


def test_cli_json(paths, capsys):
  assert coco_eval.main(['--gt', str(paths['gt']), '--pred', str(paths['pred']), '--json']) == 0
  stats = json.loads(capsys.readouterr().out)
  np.testing.assert_allclose([stats[k] for k in coco_eval.STAT_NAMES], REFERENCE, atol=1e-4)


def ground_truth_as_results(gt_path):
  gt = json.loads(gt_path.read_text())
  return [{'image_id': a['image_id'], 'category_id': 1, 'keypoints': a['keypoints'], 'score': 1.0}
          for a in gt['annotations'] if a['num_keypoints'] > 0]


def test_ground_truth_as_results_is_perfect(paths):
  stats = coco_eval.coco_keypoint_eval(paths['gt'], ground_truth_as_results(paths['gt']))
  assert stats['AP'] == pytest.approx(1.0)
  assert stats['AR'] == pytest.approx(1.0)


def test_empty_results_score_zero(paths):
  assert coco_eval.coco_keypoint_eval(paths['gt'], []) == {k: 0.0 for k in coco_eval.STAT_NAMES}


def test_unknown_image_id_is_a_clear_error(paths):
  results = ground_truth_as_results(paths['gt'])
  results[0] = dict(results[0], image_id=123456789)
  with pytest.raises(ValueError, match='not in the ground truth.*123456789'):
    coco_eval.coco_keypoint_eval(paths['gt'], results)


def test_wrong_keypoint_count_is_a_clear_error(paths):
  results = ground_truth_as_results(paths['gt'])
  results[0] = dict(results[0], keypoints=results[0]['keypoints'][:-3])
  with pytest.raises(ValueError, match='48 keypoint values, expected 3 x 17'):
    coco_eval.coco_keypoint_eval(paths['gt'], results)


def test_results_from_keypoints_keeps_top_20_per_image():
  rng = np.random.default_rng(0)
  image_ids = np.array([7] * 25 + [3] * 4)
  keypoints = rng.uniform(0, 100, size=(29, 17, 3))
  scores = rng.permutation(29).astype(np.float64)
  results = coco_eval.results_from_keypoints(image_ids, keypoints, scores)
  assert [r['image_id'] for r in results] == [7] * 20 + [3] * 4
  kept_7 = [r['score'] for r in results if r['image_id'] == 7]
  assert kept_7 == sorted(scores[:25], reverse=True)[:20]
  first = int(np.argmax(scores[:25]))
  assert results[0]['keypoints'] == pytest.approx(keypoints[first].reshape(-1).tolist())
  assert results[0]['category_id'] == 1
  json.dumps(results)  # plain Python types only


def test_results_from_keypoints_round_trip_through_evaluation(paths):
  gt = json.loads(paths['gt'].read_text())
  people = [a for a in gt['annotations'] if a['num_keypoints'] > 0]
  keypoints = np.array([a['keypoints'] for a in people], np.float64).reshape(-1, 17, 3)
  # Extra low-scoring junk people on one image beyond the 20 kept do not change AP.
  junk = np.tile(keypoints[:1] + 300.0, (30, 1, 1))
  image_ids = [a['image_id'] for a in people] + [people[0]['image_id']] * 30
  scores = np.concatenate([np.ones(len(people)), np.full(30, 0.01)])
  results = coco_eval.results_from_keypoints(image_ids, np.concatenate([keypoints, junk]), scores)
  assert len(results) == len(people) + 20 - sum(a['image_id'] == people[0]['image_id']
                                                for a in people)
  assert coco_eval.coco_keypoint_eval(paths['gt'], results)['AP'] == pytest.approx(1.0)
