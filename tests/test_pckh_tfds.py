"""hgjax.pckh with hgjax's own MPII validation split (a tfds data_dir) as ground truth, and the
prediction files the MPII evaluator writes, against gt_valid.mat-style files of the same data."""

import json
import types

import numpy as np
import pytest
import scipy.io

from hgjax import defaults
from hgjax.evaluation import mpii_submission
from hgjax.evaluation import pckh
from hgjax.evaluation import single_person
from tests.test_datasets_mpii import EVAL_DATA
from tests.test_datasets_mpii import FIXTURE
from tests.test_datasets_mpii import _build
from tests.test_datasets_mpii import _gt_valid
from tests.test_datasets_mpii import _json_layout


@pytest.fixture(scope='module')
def built(tmp_path_factory, shared_data):
  """-> (data_dir, gt_valid.mat): the three fixture persons (gt_valid persons 0, 1, 2)."""
  records = json.loads((shared_data / FIXTURE / 'test_mpii.shared.json').read_text())
  our_format = scipy.io.loadmat(str(shared_data / EVAL_DATA / 'detections_our_format.mat'))
  root = tmp_path_factory.mktemp('mpii_pckh')
  manual = _json_layout(root / 'manual', shared_data, None, records,
                        _gt_valid(our_format, [0, 1, 2]))
  assert _build(manual, root / 'out') == 0
  return root / 'out', manual / 'annot' / 'gt_valid.mat'


def run_json(gt, pred, capsys) -> str:
  assert pckh.main(['--gt', str(gt), '--pred', str(pred), '--json']) == 0
  return capsys.readouterr().out


def gt_mat(path, gt: pckh.MpiiGroundTruth):
  """A gt_valid-style file (1-based) holding exactly the arrays of `gt`."""
  scipy.io.savemat(str(path), {
      'pos_gt_src': gt.joints.transpose(1, 2, 0) + 1.0,
      'jnt_missing': gt.missing.T.astype(np.float64),
      'headboxes_src': gt.headbox.transpose(1, 2, 0) + 1.0})
  return path


def test_data_dir_ground_truth_is_the_gt_valid_persons(built):
  data_dir, gt_valid = built
  gt, ref = pckh.load_ground_truth(data_dir), pckh.load_ground_truth(gt_valid)
  assert gt.joints.shape == (3, 16, 2) and gt.headbox.shape == (3, 2, 2)
  np.testing.assert_array_equal(gt.missing, ref.missing)
  assert gt.missing.sum() == 2   # person 2: both ankles
  annotated = ~gt.missing
  np.testing.assert_allclose(gt.joints[annotated], ref.joints[annotated], atol=1e-3)
  np.testing.assert_allclose(gt.headbox, ref.headbox, atol=1e-3)


def test_ground_truth_as_predictions_is_100(built, tmp_path, capsys):
  data_dir, _ = built
  preds = tmp_path / 'preds.mat'
  mpii_submission.save_mpii_predictions(preds, pckh.load_ground_truth(data_dir).joints)
  table = json.loads(run_json(data_dir, preds, capsys))
  assert list(table) == list(pckh.JSON_KEYS)
  assert all(v == 100.0 for v in table.values()), table


def perturbed(gt: pckh.MpiiGroundTruth, seed: int = 0) -> np.ndarray:
  """Predictions off by 0 .. 1.2 x the PCKh@0.5 radius in random directions (0-based)."""
  rng = np.random.default_rng(seed)
  radius = 0.5 * 0.6 * np.linalg.norm(gt.headbox[:, 1] - gt.headbox[:, 0], axis=-1)
  length = rng.uniform(0, 1.2, gt.missing.shape) * radius[:, None]
  angle = rng.uniform(0, 2 * np.pi, gt.missing.shape)
  return gt.joints + length[..., None] * np.stack([np.cos(angle), np.sin(angle)], -1)


def test_perturbed_predictions_give_the_same_table_as_the_mat_paths(built, tmp_path, capsys):
  data_dir, gt_valid = built
  gt = pckh.load_ground_truth(data_dir)
  preds = tmp_path / 'preds.mat'
  mpii_submission.save_mpii_predictions(preds, perturbed(gt))
  from_dir = run_json(data_dir, preds, capsys)
  table = json.loads(from_dir)
  assert 0 < table['Mean'] < 100 and table['Mean@0.1'] < table['Mean']
  # The same arrays as a gt_valid-style .mat: the identical JSON line.
  assert run_json(gt_mat(tmp_path / 'gt.mat', gt), preds, capsys) == from_dir
  # The original gt_valid.mat columns (1-based float64 source of the build): the same numbers.
  assert json.loads(run_json(gt_valid, preds, capsys)) == pytest.approx(table, abs=1e-9)


def test_evaluator_writes_both_prediction_files_in_ground_truth_order(built, tmp_path, capsys):
  """SinglePersonEvaluator.run (model replaced by fixed predictions) -> predictions_step*.mat
  and pred_keypoints_mpii_step*.mat; hgjax.pckh scores both as the predictions themselves."""
  data_dir, _ = built
  config = defaults.get_config()
  config.dataset.data_dir = str(data_dir)
  gt = pckh.load_ground_truth(data_dir)
  preds = perturbed(gt, seed=1)
  ev = object.__new__(single_person.SinglePersonEvaluator)
  ev.config, ev.keypoints = config, np.concatenate([gt.joints, ~gt.missing[..., None]], -1)
  ev.head_boxes, ev.mpii_format = gt.headbox, True
  ev.predict = lambda variables: (preds, None, None)
  ev._log_images = lambda *args: None
  writer = types.SimpleNamespace(scalars=lambda step, metrics: None)
  state = types.SimpleNamespace(params={}, batch_stats={})
  metrics = ev.run(state, 7, writer, tmp_path)
  expected = pckh.pckh_table(preds, gt.joints, gt.missing, gt.headbox)
  assert metrics['eval/pckh@0.5'] == pytest.approx(expected['Mean'] / 100)
  submission = tmp_path / 'pred_keypoints_mpii_step7.mat'
  np.testing.assert_allclose(mpii_submission.load_submission(submission), preds, atol=1e-9)
  from_preds = run_json(data_dir, tmp_path / 'predictions_step7.mat', capsys)
  assert json.loads(from_preds) == pytest.approx(expected, abs=1e-9)
  assert run_json(data_dir, submission, capsys) == from_preds
  # The fixture images hold one person each: one pred entry per person, annorect 1.
  pred = scipy.io.loadmat(str(submission), squeeze_me=True, struct_as_record=False)['pred']
  assert [p.image.name for p in pred] == ['005808361.jpg', '052475643.jpg', '051423444.jpg']


def test_errors_name_the_data_dir_and_the_count(built, tmp_path, capsys):
  assert pckh.main(['--gt', str(tmp_path), '--pred', str(tmp_path / 'x.mat')]) == 2
  err = capsys.readouterr().err
  assert str(tmp_path) in err and "split 'validation' of hgjax_mpii" in err
  data_dir, _ = built
  small = tmp_path / 'small.mat'
  mpii_submission.save_mpii_predictions(small, np.zeros((2, 16, 2)))
  assert pckh.main(['--gt', str(data_dir), '--pred', str(small)]) == 2
  err = capsys.readouterr().err
  assert 'small.mat has 2 persons' in err and 'eval.num_examples = -1' in err
