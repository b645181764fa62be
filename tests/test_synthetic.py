"""Tests for the procedural synthetic people (hgjax.datasets.synthetic and .figures)."""

import hashlib

import numpy as np
import pytest

from hgjax import skeleton
from hgjax.datasets import figures
from hgjax.datasets import synthetic

S = 128


def _pixels(points, size):
  """Nearest pixel (x, y) int arrays of points [K, 2] and whether it lies in the image."""
  xi, yi = np.round(points[:, 0]).astype(int), np.round(points[:, 1]).astype(int)
  inside = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size)
  return np.clip(xi, 0, size - 1), np.clip(yi, 0, size - 1), inside


def test_person_shapes_and_dtypes():
  ex = synthetic.person_example(0, 'train', 0, S)
  assert set(ex) == {'image', 'keypoints', 'head_box', 'center', 'scale'}
  assert ex['image'].shape == (S, S, 3) and ex['image'].dtype == np.uint8
  assert ex['keypoints'].shape == (16, 3) and ex['keypoints'].dtype == np.float32
  assert ex['head_box'].shape == (2, 2) and ex['head_box'].dtype == np.float32
  assert ex['center'].shape == (2,) and ex['center'].dtype == np.float32
  assert np.shape(ex['scale']) == () and ex['scale'].dtype == np.float32
  assert synthetic.person_example(0, 'train', 0, 96)['image'].shape == (96, 96, 3)


def test_deterministic_and_distinct():
  a = synthetic.person_example(3, 'train', 7, S)
  b = synthetic.person_example(3, 'train', 7, S)
  for key in a:
    assert np.asarray(a[key]).tobytes() == np.asarray(b[key]).tobytes(), key
  for other in (synthetic.person_example(3, 'train', 8, S),
                synthetic.person_example(3, 'validation', 7, S),
                synthetic.person_example(3, 'test', 7, S),
                synthetic.person_example(4, 'train', 7, S)):
    assert not np.array_equal(a['image'], other['image'])
    assert not np.array_equal(a['keypoints'], other['keypoints'])
  c = synthetic.scene_example(3, 'train', 7, S, 5)
  d = synthetic.scene_example(3, 'train', 7, S, 5)
  for key in c:
    assert c[key].tobytes() == d[key].tobytes(), key


def test_splits_share_no_images():
  digests = {split: {hashlib.sha1(synthetic.person_example(0, split, i, 64)['image']).digest()
                     for i in range(40)} for split in synthetic.SPLITS}
  assert all(len(d) == 40 for d in digests.values())
  assert not digests['train'] & digests['validation']
  assert not digests['train'] & digests['test']
  assert not digests['validation'] & digests['test']


def test_bad_arguments_raise():
  with pytest.raises(ValueError):
    synthetic.person_example(0, 'valid', 0, S)
  with pytest.raises(ValueError):
    synthetic.person_example(0, 'train', -1, S)
  with pytest.raises(ValueError):
    synthetic.scene_example(0, 'train', 0, S, 0)


def test_coco_joints_come_from_matching_figure_joints():
  names = [figures.FIGURE_JOINTS[i] for i in figures.COCO_FROM_FIGURE]
  assert tuple(names) == skeleton.COCO_JOINTS
  assert figures.FIGURE_JOINTS[:16] == skeleton.MPII_JOINTS


def test_every_joint_lies_on_its_figure_silhouette():
  # The figure drawn alone on an empty canvas: geometry and drawing must agree at every joint
  # (including the face points used for COCO), for large and small figures.
  for height, size in ((100, 160), (40, 64)):
    for i in range(150):
      draws = figures.Draws(np.random.default_rng([5, i]))
      figure = figures.sample_figure(draws, height, (size / 2, size / 2))
      image = np.zeros((size, size, 3), np.uint8)
      label = np.zeros((size, size), np.uint8)
      figures.draw_strokes(image, label, figure.strokes, 7)
      xi, yi, inside = _pixels(figure.joints, size)
      assert inside.all()
      assert (label[yi, xi] == 7).all(), np.array(figures.FIGURE_JOINTS)[label[yi, xi] != 7]
      assert image[label == 7].any()


def test_visibility_agrees_with_the_drawn_image():
  counts = np.zeros(3)
  for i in range(60):
    ex, label = synthetic._render_person(1, 'train', i, S)
    kp = ex['keypoints']
    xi, yi, inside = _pixels(kp[:, :2], S)
    v = kp[:, 2]
    assert np.isin(v, (0, 1, 2)).all()
    np.testing.assert_array_equal(v == 0, ~inside)          # v=0 exactly when out of frame
    assert (label[yi, xi][v == 2] == 1).all()                # visible: on the figure's pixels
    assert (label[yi, xi][v == 1] == 255).all()              # occluded: under an occluder
    counts += np.bincount(v.astype(int), minlength=3)
  assert counts[2] > 0.85 * counts.sum() and counts[1] > 0    # occlusion happens, not often


def test_left_and_right_limbs_differ_in_colour():
  # Left limbs are warm (red > blue), right limbs cool (blue > red). Read the drawn colour at
  # the middle of each forearm and shin; the other limbs may cover it now and then.
  votes = []
  for i in range(100):
    draws = figures.Draws(np.random.default_rng([6, i]))
    figure = figures.sample_figure(draws, 100, (80, 80))
    image = np.zeros((160, 160, 3), np.uint8)
    figures.draw_strokes(image, np.zeros((160, 160), np.uint8), figure.strokes, 1)
    for a, b, warm in ((14, 15, True), (4, 5, True), (11, 10, False), (1, 0, False)):
      x, y = np.round(0.5 * (figure.joints[a] + figure.joints[b])).astype(int)
      r, _, blue = image[y, x].astype(int)
      votes.append((r > blue) == warm)
  assert np.mean(votes) > 0.9


def test_head_box_contains_head_segment_and_matches_mpii_normaliser():
  for i in range(50):
    ex = synthetic.person_example(2, 'validation', i, S)
    (x1, y1), (x2, y2) = ex['head_box']
    for joint in (8, 9):   # upper_neck, head_top
      x, y = ex['keypoints'][joint, :2]
      assert x1 - 1e-3 <= x <= x2 + 1e-3 and y1 - 1e-3 <= y <= y2 + 1e-3
    # MPII validation head boxes satisfy 0.6 x diagonal = 0.75 x head-segment length.
    segment = np.linalg.norm(ex['keypoints'][9, :2] - ex['keypoints'][8, :2])
    diagonal = np.hypot(x2 - x1, y2 - y1)
    np.testing.assert_allclose(0.6 * diagonal, 0.75 * segment, rtol=1e-4)


def test_person_fills_the_frame_like_a_crop():
  for i in range(50):
    ex = synthetic.person_example(0, 'train', i, S)
    height = 200 * ex['scale']
    assert 0.5 * S <= height <= 0.9 * S
    kp = ex['keypoints']
    np.testing.assert_allclose(ex['center'], 0.5 * (kp[:, :2].min(0) + kp[:, :2].max(0)),
                               atol=0.15 * height)   # face points also shape the bounding box
    assert np.abs(ex['center'] - S / 2).max() < 0.2 * S
    extent = np.ptp(kp[:, :2], axis=0).max()
    assert 0.3 * height < extent < 1.3 * height
    head = np.linalg.norm(kp[9, :2] - kp[8, :2])
    assert 0.08 * height < head < 0.22 * height


def test_scene_shapes_counts_and_boxes():
  seen = set()
  for i in range(30):
    ex, label = synthetic._render_scene(0, 'train', i, S, 4)
    assert set(ex) == {'image', 'keypoints', 'bbox', 'area'}
    assert ex['image'].shape == (S, S, 3) and ex['image'].dtype == np.uint8
    p = len(ex['keypoints'])
    seen.add(p)
    assert 1 <= p <= 4
    assert ex['keypoints'].shape == (p, 17, 3) and ex['keypoints'].dtype == np.float32
    assert ex['bbox'].shape == (p, 4) and ex['area'].shape == (p,)
    assert ex['bbox'].dtype == np.float32 and ex['area'].dtype == np.float32
    ids = [k for k in np.unique(label) if 0 < k < 255]
    np.testing.assert_array_equal(np.sort(ex['area']), np.sort([(label == k).sum() for k in ids]))
    for kp, (x, y, w, h), area in zip(ex['keypoints'], ex['bbox'], ex['area'], strict=True):
      assert 0 < area <= w * h
      v = kp[:, 2]
      assert np.isin(v, (0, 1, 2)).all()
      _, _, inside = _pixels(kp[:, :2], S)
      assert not (v > 0)[~inside].any()
      vis = kp[v == 2, :2]
      assert ((vis >= (x, y)) & (vis <= (x + w, y + h))).all()
  assert seen == {1, 2, 3, 4}


def test_scene_heights_set_the_figure_scale():
  """Figures drawn at 0.9 x the side span ~3x the joints of figures drawn at 0.3 x the side."""
  def median_span(heights):
    spans = []
    for i in range(30):
      kp = synthetic.scene_example(0, 'train', i, S, 3, heights)['keypoints']
      for person in kp:
        seen = person[:, 2] > 0
        if seen.sum() >= 10:
          spans.append(np.ptp(person[seen, 1]))
    return np.median(spans)

  ratio = median_span((0.9, 0.9)) / median_span((0.3, 0.3))
  assert 2.4 < ratio < 3.6, ratio
  with pytest.raises(ValueError, match=r'heights.*\(0\.5, 0\.2\)'):
    synthetic.scene_example(0, 'train', 0, S, 3, (0.5, 0.2))
