"""The MPII benchmark's `pred` structure: round trip, the field layout the toolkit reads
(evaluatePCKh.m: pred(imgidx).annorect(ridx).annopoints.point with x, y, id), the reader on
the real release-structure file of the shared data, and the test-set file aligned to a release."""

import h5py
import numpy as np
import pytest
import scipy.io

from hgjax.evaluation import mpii_submission
from tests.test_datasets_mpii import EVAL_DATA

NAMES = ['a.jpg', 'b.jpg', 'a.jpg', 'c.jpg', 'b.jpg']
RECTS = [2, 1, 1, 1, 3]


def predictions(n=5, seed=0):
  preds = np.random.default_rng(seed).uniform(0, 600, (n, 16, 2))
  preds[0, 4] = np.nan
  return preds


def toolkit_point(pred, imgidx, ridx, joint_id):
  """(x, y) as the toolkit finds it: pred(imgidx).annorect(ridx).annopoints.point, the point
  whose id equals joint_id (util_get_annopoint_by_id); 1-based MATLAB indices, raw loadmat."""
  annopoints = pred[0, imgidx - 1]['annorect'][0, ridx - 1]['annopoints'][0, 0]
  points = annopoints['point'][0]
  hits = [p for p in points if int(p['id'].item()) == joint_id]
  assert len(hits) == 1
  return float(hits[0]['x'].item()), float(hits[0]['y'].item())


def test_round_trip_and_toolkit_layout(tmp_path):
  preds = predictions()
  path = tmp_path / 'pred_keypoints_mpii.mat'
  mpii_submission.save_submission(path, preds, NAMES, RECTS)
  raw = scipy.io.loadmat(str(path))
  pred = raw['pred']
  assert pred.shape == (1, 3) and pred.dtype.names == ('image', 'annorect')
  assert [pred[0, i]['image'][0, 0]['name'].item() for i in range(3)] == ['a.jpg', 'b.jpg',
                                                                           'c.jpg']
  assert [pred[0, i]['annorect'].shape for i in range(3)] == [(1, 2), (1, 3), (1, 1)]
  assert pred[0, 1]['annorect'][0, 1]['annopoints'].size == 0   # b.jpg rect 2: no person
  point = pred[0, 0]['annorect'][0, 0]['annopoints'][0, 0]['point']
  assert point.shape == (1, 16) and point.dtype.names == ('x', 'y', 'id')
  assert [int(p['id'].item()) for p in point[0]] == list(range(16))
  entry = {'a.jpg': 1, 'b.jpg': 2, 'c.jpg': 3}
  for k, (name, rect) in enumerate(zip(NAMES, RECTS, strict=True)):
    for j in range(16):
      np.testing.assert_array_equal(toolkit_point(pred, entry[name], rect, j), preds[k, j] + 1)
  np.testing.assert_array_equal(raw['person_image'], [[1, 2, 1, 3, 2]])
  # Read back in the caller's person order, 0-based; also through hgjax.pckh --pred.
  np.testing.assert_allclose(mpii_submission.load_submission(path), preds, atol=1e-9)
  np.testing.assert_allclose(mpii_submission.load_predictions(path), preds, atol=1e-9)


def test_without_person_order_persons_come_in_entry_and_rect_order(tmp_path):
  preds = predictions()
  path = tmp_path / 'pred.mat'
  mpii_submission.save_submission(path, preds, NAMES, RECTS)
  raw = scipy.io.loadmat(str(path))
  plain = tmp_path / 'plain.mat'
  scipy.io.savemat(str(plain), {'pred': raw['pred']})   # as a MATLAB script would write it
  np.testing.assert_allclose(mpii_submission.load_submission(plain), preds[[2, 0, 1, 4, 3]],
                             atol=1e-9)


def test_reader_on_the_official_annolist_structure(shared_data):
  """detections.mat: the 2958 validation persons in the release structure (points in any id
  order, unannotated joints absent) against the same persons' gt_valid-style arrays."""
  det = scipy.io.loadmat(str(shared_data / EVAL_DATA / 'detections.mat'),
                         struct_as_record=False, squeeze_me=True)
  ref = scipy.io.loadmat(str(shared_data / EVAL_DATA / 'detections_our_format.mat'))
  points, entry, rect = mpii_submission.read_annolist(det['annolist'])
  assert points.shape == (2958, 16, 2)
  np.testing.assert_array_equal(entry, np.arange(1, 2959))
  np.testing.assert_array_equal(rect, 1)
  gt = ref['pos_gt_src'].transpose(2, 0, 1)
  missing = ref['jnt_missing'].T == 1
  np.testing.assert_array_equal(np.isnan(points[..., 0]), missing)
  # pos_gt_src has 13 coordinates zeroed where the release has a value; elsewhere equal.
  comparable = ~missing & (gt != 0).all(-1)
  assert (~missing).sum() - comparable.sum() == 13
  np.testing.assert_allclose(points[comparable], gt[comparable], atol=1e-3)


def _fake_release(path):
  """Five images: train 'a' (1 rect), test 'b' (2), train 'c' (1), test 'd' (3), test 'e' (1)."""
  layout = [('a.jpg', 1), ('b.jpg', 2), ('c.jpg', 1), ('d.jpg', 3), ('e.jpg', 1)]
  annolist = np.zeros((1, len(layout)), dtype=[('image', 'O'), ('annorect', 'O')])
  for i, (name, n) in enumerate(layout):
    rects = np.zeros((1, n), dtype=[('objpos', 'O'), ('scale', 'O')])
    for r in range(n):
      rects[0, r] = ({'x': 100.0 + r, 'y': 50.0}, 1.5)
    annolist[0, i] = ({'name': name}, rects)
  scipy.io.savemat(str(path), {'RELEASE': {
      'annolist': annolist, 'img_train': np.array([[1, 0, 1, 0, 0]]),
      'single_person': np.zeros((5, 1), object), 'act': np.zeros((5, 1), object)}})
  return path


def test_test_submission_is_the_release_test_annolist(tmp_path):
  release = _fake_release(tmp_path / 'release.mat')
  preds = predictions(3)
  release_index = np.array([[4, 3], [2, 1], [4, 1]])   # 1-based (image, annorect)
  path = tmp_path / 'pred_keypoints_mpii.mat'
  mpii_submission.save_test_submission(path, preds, release_index, release)
  pred = scipy.io.loadmat(str(path))['pred']
  # evaluatePCKh.m: assert(length(annolist_test) == length(pred)), annolist_test =
  # RELEASE.annolist(RELEASE.img_train == 0).
  assert pred.shape == (1, 3)
  assert [pred[0, i]['image'][0, 0]['name'].item() for i in range(3)] == ['b.jpg', 'd.jpg',
                                                                           'e.jpg']
  assert [pred[0, i]['annorect'].shape for i in range(3)] == [(1, 2), (1, 3), (1, 1)]
  for k, (imgidx, ridx) in enumerate([(2, 3), (1, 1), (2, 1)]):   # indices into annolist_test
    for j in range(16):
      np.testing.assert_array_equal(toolkit_point(pred, imgidx, ridx, j), preds[k, j] + 1)
  for imgidx, ridx in [(1, 2), (2, 2), (3, 1)]:
    assert pred[0, imgidx - 1]['annorect'][0, ridx - 1]['annopoints'].size == 0
  np.testing.assert_allclose(mpii_submission.load_submission(path), preds, atol=1e-9)

  with pytest.raises(ValueError, match=r'person 1: release image 3 is a training image'):
    mpii_submission.save_test_submission(path, preds, [[4, 3], [3, 1], [4, 1]], release)
  with pytest.raises(ValueError, match=r"person 2: annorect 2 outside 1..1 of image 'e.jpg'"):
    mpii_submission.save_test_submission(path, preds, [[4, 3], [2, 1], [5, 2]], release)
  with pytest.raises(ValueError, match=r"persons 0 and 2 are both annorect 3 of image 'd.jpg'"):
    mpii_submission.save_test_submission(path, preds, [[4, 3], [2, 1], [4, 3]], release)


def test_cli_with_princeton_test_h5(tmp_path, capsys):
  release = _fake_release(tmp_path / 'release.mat')
  preds = predictions(3)
  mpii_submission.save_mpii_predictions(tmp_path / 'test_preds.mat', preds)
  with h5py.File(tmp_path / 'test.h5', 'w') as f:   # 0-based, as pose-hg-train's annot/test.h5
    f['index'] = np.array([3, 1, 3])
    f['person'] = np.array([2, 0, 0])
  out = tmp_path / 'out.mat'
  assert mpii_submission.main(['--pred', str(tmp_path / 'test_preds.mat'), '--release',
                               str(release), '--test_h5', str(tmp_path / 'test.h5'),
                               '--out', str(out)]) == 0
  assert 'wrote' in capsys.readouterr().out
  pred = scipy.io.loadmat(str(out))['pred']
  np.testing.assert_allclose(toolkit_point(pred, 2, 3, 9), preds[0, 9] + 1)
  np.testing.assert_allclose(mpii_submission.load_submission(out), preds, atol=1e-9)


def test_reader_errors_name_file_and_field(tmp_path):
  path = tmp_path / 'bad.mat'
  mpii_submission.save_submission(path, predictions(1), ['a.jpg'], [1])
  raw = scipy.io.loadmat(str(path))
  raw['pred'][0, 0]['annorect'][0, 0]['annopoints'][0, 0]['point'][0, 3]['id'] = 2
  scipy.io.savemat(str(path), {'pred': raw['pred']})
  with pytest.raises(ValueError, match=r'bad.mat: pred\(1\).annorect\(1\).annopoints.point.id: '
                                       r'value 2 is not a joint id in 0..15 or repeats'):
    mpii_submission.load_submission(path)
  scipy.io.savemat(str(tmp_path / 'none.mat'), {'other': 1})
  with pytest.raises(ValueError, match=r"none.mat: missing variable 'pred'"):
    mpii_submission.load_submission(tmp_path / 'none.mat')
