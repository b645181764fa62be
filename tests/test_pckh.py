"""PCKh against the reference tables of the shared data README (section 6) and a closed form."""

import json

import h5py
import numpy as np
import pytest
import scipy.io

from hgjax.evaluation import mpii_submission
from hgjax.evaluation import pckh

# data README section 6: Head Sho Elb Wri Hip Knee Ank, Mean (unweighted), Mean (weighted).
REFERENCE = {
    'tompson_all': (95.60, 92.71, 83.36, 76.74, 81.93, 73.36, 65.45, 81.46, 82.34),
    'valid-ours': (95.75, 94.31, 89.20, 84.80, 85.99, 83.48, 77.80, 87.49, 88.04),
    'valid-example': (93.63, 92.20, 86.18, 79.97, 80.79, 77.80, 70.55, 83.25, 83.97),
    'tompson_cvpr15': (96.36, 92.45, 83.96, 78.14, 80.69, 72.41, 63.50, 81.20, 82.22),
}
ORDER = ('Head', 'Shoulder', 'Elbow', 'Wrist', 'Hip', 'Knee', 'Ankle', 'Mean_unweighted', 'Mean')


@pytest.fixture(scope='module')
def mpii(shared_data):
  root = shared_data / 'mpii_eval'
  return {
      'mat': root / 'pytorch-pose/evaluation/data/detections_our_format.mat',
      'gt_json': root / 'derived/shared_subset/mpii_valid_gt.shared_candidate.json',
      'pred_json': root / 'derived/shared_subset/mpii_valid_preds.shared_candidate.json',
  }


def assert_matches_reference(table, name):
  got = tuple(table[k] for k in ORDER)
  # The reference is rounded to 2 decimals: equal after rounding (|diff| <= 0.005). This also
  # tells apart a count-weighted left/right column average (off by 0.0054 on Tompson's wrists).
  np.testing.assert_allclose(got, REFERENCE[name], rtol=0, atol=0.005 + 1e-9, err_msg=name)


def test_full_validation_set_tompson(mpii):
  table, n = pckh.evaluate_files(mpii['mat'], mpii['mat'])
  assert n == 2958
  assert_matches_reference(table, 'tompson_all')


@pytest.mark.parametrize('key', ['valid-ours', 'valid-example', 'tompson_cvpr15'])
def test_shared_subset(mpii, key):
  table, n = pckh.evaluate_files(mpii['gt_json'], mpii['pred_json'], key)
  assert n == 998
  assert_matches_reference(table, key)


def test_cli_json(mpii, capsys):
  assert pckh.main(['--gt', str(mpii['mat']), '--pred', str(mpii['mat']), '--json']) == 0
  table = json.loads(capsys.readouterr().out)
  assert list(table) == list(pckh.JSON_KEYS)
  assert_matches_reference(table, 'tompson_all')


def test_cli_table(mpii, capsys):
  assert pckh.main(['--gt', str(mpii['mat']), '--pred', str(mpii['mat'])]) == 0
  header, row = capsys.readouterr().out.splitlines()[:2]
  assert header.split() == list(pckh.TABLE_KEYS)
  assert row.split()[1:8] == ['95.60', '92.71', '83.36', '76.74', '81.93', '73.36', '65.45']
  assert row.split()[8] == '82.34'


def test_princeton_h5_and_own_mat_give_the_same_table(mpii, tmp_path):
  preds_1based = np.array(json.loads(mpii['pred_json'].read_text())['preds']['valid-ours'])
  h5_path = tmp_path / 'valid-ours.h5'
  with h5py.File(h5_path, 'w') as f:
    f['preds'] = preds_1based
  own_path = tmp_path / 'valid-ours.mat'
  mpii_submission.save_mpii_predictions(own_path, preds_1based - 1.0)
  # The saved file is 1-based, in the form other evaluators read.
  np.testing.assert_allclose(scipy.io.loadmat(own_path)['preds'], preds_1based)
  for path in (h5_path, own_path):
    table, _ = pckh.evaluate_files(mpii['gt_json'], path)
    assert_matches_reference(table, 'valid-ours')


def test_loaders_convert_to_zero_based(mpii):
  gt = pckh.load_ground_truth(mpii['mat'])
  raw = scipy.io.loadmat(mpii['mat'])
  np.testing.assert_allclose(gt.joints[0, 0], raw['pos_gt_src'][0, :, 0] - 1)
  np.testing.assert_allclose(mpii_submission.load_predictions(mpii['mat'])[5, 3],
                             raw['pos_pred_src'][3, :, 5] - 1)
  # The JSON subset is the same ground truth as the .mat columns it names.
  persons = json.loads(mpii['gt_json'].read_text())['persons']
  sub = pckh.load_ground_truth(mpii['gt_json'])
  idx = [p['index'] for p in persons]
  annotated = ~sub.missing
  np.testing.assert_allclose(sub.joints[annotated], gt.joints[idx][annotated], atol=1e-9)
  np.testing.assert_array_equal(sub.missing, gt.missing[idx])
  np.testing.assert_allclose(sub.headbox, gt.headbox[idx], atol=1e-9)


def closed_form_case():
  """Two persons with errors exactly on the thresholds (see the expected values below)."""
  gt = np.tile(np.arange(16, dtype=np.float64)[:, None] * 10 + 100, (2, 1, 2))
  pred = gt.copy()
  missing = np.zeros((2, 16), bool)
  # Head size 0.6 x diagonal: A: 0.6 x 50 = 30 px, B: 0.6 x 100 = 60 px.
  headbox = np.array([[[10, 20], [40, 60]], [[0, 0], [60, 80]]], np.float64)
  a, b = 0, 1
  pred[a, 9] += (9, 12)       # 15 px = 0.5 x 30: correct at 0.5 (<=), wrong at 0.1
  pred[b, 9] += (0, 6)        # 6 px = 0.1 x 60: correct at 0.5 and at 0.1 (<=)
  pred[a, 12] += (0, 15.01)   # just over 0.5: wrong
  missing[b, 12] = True
  pred[b, 13] += (30, 0)      # 0.5 x 60: correct at 0.5 only
  pred[a, 10] += (3.2, 0)     # 0.107 x 30: wrong at 0.1 (right at the 0.11 of one code base)
  pred[a, 6] += (100, 0)      # pelvis: wrong, but not in the means
  missing[a, 7] = True        # thorax
  pred[a, 0] = np.nan         # a NaN prediction counts as wrong
  return pred, gt, missing, headbox


def test_closed_form_per_joint():
  rates = pckh.pckh(*closed_form_case(), threshold=0.5)
  expected = np.full(16, 100.0)
  expected[[0, 6]] = 50.0
  expected[12] = 0.0
  np.testing.assert_allclose(rates, expected)


def test_closed_form_table():
  table = pckh.pckh_table(*closed_form_case())
  expected = {
      'Head': 100.0,
      'Shoulder': 50.0,          # plain mean of r (0/1) and l (2/2); count-weighted gives 66.7
      'Elbow': 100.0, 'Wrist': 100.0, 'Hip': 100.0, 'Knee': 100.0,
      'Ankle': 75.0,             # r 1/2 (NaN), l 2/2
      'Mean': 100.0 * 25 / 27,   # 14 joints x 2 persons - 1 missing; 2 wrong
      'Mean_unweighted': (50.0 + 0.0 + 12 * 100.0) / 14,
      'Mean@0.1': 100.0 * 22 / 27,  # also wrong: head A, l-shoulder B, r-wrist A
  }
  assert list(table) == list(expected)
  for key, value in expected.items():
    assert table[key] == pytest.approx(value, abs=1e-9), key


def test_joint_without_annotations_is_nan_and_left_out_of_unweighted_mean():
  pred, gt, missing, headbox = closed_form_case()
  missing[:, 14] = True
  rates = pckh.pckh(pred, gt, missing, headbox)
  assert np.isnan(rates[14])
  table = pckh.pckh_table(pred, gt, missing, headbox)
  assert table['Mean_unweighted'] == pytest.approx((50.0 + 0.0 + 11 * 100.0) / 13)
  assert table['Mean'] == pytest.approx(100.0 * 23 / 25)


def test_error_messages(mpii, tmp_path, capsys):
  bad_shape = tmp_path / 'bad_shape.mat'
  scipy.io.savemat(bad_shape, {'preds': np.zeros((2958, 14, 2))})
  with pytest.raises(ValueError, match=r"bad_shape.mat: field 'preds' has shape \(2958, 14, 2\)"):
    mpii_submission.load_predictions(bad_shape)
  no_field = tmp_path / 'no_field.mat'
  scipy.io.savemat(no_field, {'something': np.zeros(3)})
  with pytest.raises(ValueError, match=r"no_field.mat: no prediction field.*something"):
    mpii_submission.load_predictions(no_field)
  with pytest.raises(ValueError, match=r"no_field.mat: missing field 'pos_gt_src'"):
    pckh.load_ground_truth(no_field)
  bad_gt = tmp_path / 'bad_gt.mat'
  scipy.io.savemat(bad_gt, {'pos_gt_src': np.zeros((16, 2, 5)), 'jnt_missing': np.zeros((16, 4)),
                            'headboxes_src': np.zeros((2, 2, 5))})
  with pytest.raises(ValueError,
                     match=r"field 'jnt_missing' has shape \(16, 4\), expected \[16, 5\]"):
    pckh.load_ground_truth(bad_gt)
  with pytest.raises(ValueError, match=r'available: \[.*valid-ours'):
    mpii_submission.load_predictions(mpii['pred_json'])
  small = tmp_path / 'small.mat'
  mpii_submission.save_mpii_predictions(small, np.zeros((10, 16, 2)))
  assert pckh.main(['--gt', str(mpii['mat']), '--pred', str(small)]) == 2
  err = capsys.readouterr().err
  assert 'small.mat has 10 persons' in err and 'has 2958' in err
