"""AE grouping on hand-made heatmaps and tags, and the COCO AP of ground-truth-rendered maps."""

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest

from hgjax import grouping
from hgjax import targets
from hgjax import transforms
from hgjax.evaluation import coco_eval
from hgjax.evaluation import multi_person

K = 17
PARAMS = grouping.GroupingParams()
BACKGROUND_TAG = 1000.0


def _maps(people, tags, size, sigma=1.0, heights=None):
  """Hand-made network output.

  people: [P, K, 2] int grid (col, row) (a negative col = joint absent); tags: [P] person tags.
  Returns heatmaps [size, size, K] (max over people of Gaussians, peak heights[p]) and tags
  [size, size, K, 1]: the person's tag wherever its Gaussian dominates, else BACKGROUND_TAG.
  """
  people = np.asarray(people)
  heights = np.ones(len(people)) if heights is None else np.asarray(heights)
  yy, xx = np.mgrid[:size, :size]
  per = np.zeros((len(people), size, size, K), np.float32)
  for p, joints in enumerate(people):
    for j, (c, r) in enumerate(joints):
      if c >= 0:
        g = heights[p] * np.exp(-((xx - c) ** 2 + (yy - r) ** 2) / (2 * sigma ** 2))
        per[p, ..., j] = np.where(g > 1e-3, g, 0)
  heat = per.max(0)
  tag = np.where(heat > 0, np.asarray(tags, np.float32)[per.argmax(0)], BACKGROUND_TAG)
  return heat, tag[..., None].astype(np.float32)


def _random_people(rng, count, size, margin=3):
  """count people with distinct, well separated joint positions (per joint >= 4 px apart)."""
  people = np.zeros((count, K, 2), int)
  for j in range(K):
    chosen = []
    while len(chosen) < count:
      c = rng.integers(margin, size - margin, 2)
      if all(np.abs(c - o).max() >= 4 for o in chosen):
        chosen.append(c)
    people[:, j] = chosen
  return people


def _assert_same_people(found, people, scores=None):
  """found [N, K, 3] equals people [N, K, 2] up to order (matched by the nose)."""
  assert len(found) == len(people)
  for person in people:
    match = [f for f in found if np.array_equal(f[0, :2], person[0])]
    assert len(match) == 1, f'no unique person with nose at {person[0]}'
    np.testing.assert_array_equal(match[0][:, :2], person)


def test_recovers_people_exactly():
  rng = np.random.default_rng(0)
  people = _random_people(rng, 4, 32)
  tags = np.array([0.0, 3.0, 6.0, 9.0])
  heat, tag = _maps(people, tags, 32)
  tag += rng.uniform(-0.3, 0.3, tag.shape).astype(np.float32)     # noisy but unambiguous
  kp, scores = grouping.group(heat, tag, PARAMS)
  _assert_same_people(kp, people)
  np.testing.assert_allclose(kp[..., 2], 1.0)
  np.testing.assert_allclose(scores, 1.0)


def test_more_candidates_than_people():
  rng = np.random.default_rng(1)
  people = _random_people(rng, 2, 40, margin=8)
  heat, tag = _maps(people, [0.0, 5.0], 40)
  wrist = 9
  # Extra candidates of one joint: below the threshold (ignored), a weaker one with person
  # 0's tag (loses the match to the stronger), one with an unrelated tag (a new person).
  extra = [((1, 1), 0.05, 0.0), ((38, 1), 0.6, 0.2), ((1, 38), 0.7, 20.0)]
  for (c, r), value, t in extra:
    heat[r, c, wrist], tag[r, c, wrist] = value, t
  loc, val, _ = grouping.candidates(heat, tag, 30, PARAMS.detection_threshold)
  assert len(val[wrist]) == 4 and all(len(v) == 2 for j, v in enumerate(val) if j != wrist)
  no_refine = dataclasses.replace(PARAMS, refine=False)
  kp, scores = grouping.group(heat, tag, no_refine)
  assert len(kp) == 4
  _assert_same_people(kp[:2], people)
  np.testing.assert_allclose(scores[:2], 1.0)
  # The two losers are people of one joint each, scored by the mean over all K joints.
  np.testing.assert_allclose(sorted(scores[2:]), [0.6 / K, 0.7 / K], rtol=1e-6)
  # With refinement the real people come first and stay exact.
  kp, scores = grouping.group(heat, tag, PARAMS)
  _assert_same_people(kp[:2], people)
  assert scores[2] < 1.0


def _nose_shoulders_elbow(background, strong_shoulder, weak_shoulder, elbow):
  """A 16x16 scene: a nose (heat 1, tag 0) at (4, 4), shoulder candidates (heat 0.9 at (2, 8),
  0.3 at (12, 8)) and an elbow (heat 0.8 at (6, 12)) with the given tags; other tags
  `background`. Returns heatmaps [16, 16, K], tags [16, 16, K, 1]."""
  heat = np.zeros((16, 16, K), np.float32)
  tag = np.full((16, 16, K, 1), background, np.float32)
  heat[4, 4, 0], tag[4, 4, 0] = 1.0, 0.0
  heat[8, 2, 5], tag[8, 2, 5] = 0.9, strong_shoulder
  heat[8, 12, 5], tag[8, 12, 5] = 0.3, weak_shoulder
  heat[12, 6, 7], tag[12, 6, 7] = 0.8, elbow
  return heat, tag


def test_cost_is_rounded_tag_distance_then_heat():
  # One person from the nose (tag 0). Shoulder candidates: strong at tag distance 0.7 (rounds
  # to 1), weak at 0.2 (rounds to 0). Elbow: 1.2 away in tag, beyond the threshold: a new person.
  heat, tag = _nose_shoulders_elbow(BACKGROUND_TAG, 0.7, 0.2, 1.2)
  params = dataclasses.replace(PARAMS, refine=False, subpixel='none')
  kp, _ = grouping.group(heat, tag, params)
  first = [p for p in kp if p[0, 2] > 0][0]
  np.testing.assert_allclose(first[5], [12, 8, 0.3], rtol=1e-6)   # weak, closer-tagged
  assert first[7, 2] == 0
  assert len(kp) == 3                                     # + strong shoulder + elbow


def test_tag_scale_refines_the_rounding_and_the_threshold():
  # Shoulders at tag distance 0.4 (strong) and 0.1 (weak); elbow at 0.6.
  heat, tag = _nose_shoulders_elbow(BACKGROUND_TAG, 0.4, 0.1, 0.6)
  params = dataclasses.replace(PARAMS, refine=False, subpixel='none')
  # Scale 1: both shoulders round to 0, so the stronger wins; the elbow (0.6 < 1) joins.
  kp, _ = grouping.group(heat, tag, params)
  first = [p for p in kp if p[0, 2] > 0][0]
  np.testing.assert_allclose(first[5], [2, 8, 0.9], rtol=1e-6)
  np.testing.assert_allclose(first[7], [6, 12, 0.8], rtol=1e-6)
  assert len(kp) == 2
  # Scale 2: distances 0.8 and 0.2 round to 1 and 0, so the closer-tagged shoulder wins; the
  # strong one starts a second person (tag 0.8), which the elbow (1.2: 1.1 from the first
  # person's mean 0.1, 0.4 from the second) joins.
  scaled = dataclasses.replace(params, tag_scale=2.0)
  kp, _ = grouping.group(heat, tag, scaled)
  first = [p for p in kp if p[0, 2] > 0][0]
  np.testing.assert_allclose(first[5], [12, 8, 0.3], rtol=1e-6)
  second = [p for p in kp if p[0, 2] == 0][0]
  assert first[7, 2] == 0 and len(kp) == 2
  np.testing.assert_allclose(second[[5, 7]], [[2, 8, 0.9], [6, 12, 0.8]], rtol=1e-6)
  # The same as scaling the tag maps themselves, refinement included.
  for p in (scaled, dataclasses.replace(PARAMS, tag_scale=2.0)):
    unscaled = dataclasses.replace(p, tag_scale=1.0)
    np.testing.assert_array_equal(grouping.group(heat, tag, p)[0],
                                  grouping.group(heat, tag * 2, unscaled)[0])
  with pytest.raises(ValueError, match='tag_scale'):
    dataclasses.replace(PARAMS, tag_scale=0.0)


def test_people_sharing_a_joint_location():
  rng = np.random.default_rng(2)
  people = _random_people(rng, 2, 32)
  people[1, 9] = people[0, 9]               # the same left wrist pixel (hands together)
  heat, tag = _maps(people, [0.0, 2.0], 32)
  # One peak, one tag (person 0's): person 0 gets it by matching, person 1 by refinement.
  assert (grouping.peaks(heat)[..., 9] & (heat[..., 9] > 0.1)).sum() == 1
  kp, scores = grouping.group(heat, tag, PARAMS)
  _assert_same_people(kp, people)
  np.testing.assert_allclose(kp[..., 2], 1.0)
  without = grouping.group(heat, tag, dataclasses.replace(PARAMS, refine=False))[0]
  assert sorted(without[:, 9, 2].tolist()) == [0.0, 1.0]


@pytest.mark.parametrize('top_k', [30, 40])
def test_more_than_30_people(top_k):
  rng = np.random.default_rng(3)
  people = _random_people(rng, 40, 64)
  tags = 2.0 * np.arange(40)
  heights = 1.0 - 0.002 * np.arange(40)           # distinct scores: person p ranks p-th
  heat, tag = _maps(people, tags, 64, heights=heights)
  params = dataclasses.replace(PARAMS, top_k=top_k, max_people=40)
  kp, scores = grouping.group(heat, tag, params)
  # Each joint's top_k candidates are the strongest people's: with top_k=30, people 0..29.
  _assert_same_people(kp, people[:top_k])
  np.testing.assert_allclose(scores, heights[:top_k], rtol=1e-5)
  kp20, scores20 = grouping.group(heat, tag, dataclasses.replace(params, max_people=20))
  assert len(kp20) == 20
  np.testing.assert_array_equal(kp20, kp[:20])


def _weak_ankle_scene():
  """Two people; person 1's ankle peak is 0.05 high (below the detection threshold)."""
  rng = np.random.default_rng(4)
  people = _random_people(rng, 2, 32)
  heat, tag = _maps(people, [0.0, 4.0], 32)
  heat[..., 15] *= np.where(tag[..., 15, 0] == 4.0, 0.05, 1.0)
  return people, heat, tag


def test_refine_fills_weak_joint_at_its_tag():
  people, heat, tag = _weak_ankle_scene()
  c, r = people[1, 15]
  kp, _ = grouping.group(heat, tag, dataclasses.replace(PARAMS, subpixel='none'))
  person1 = [p for p in kp if np.array_equal(p[0, :2], people[1, 0])][0]
  np.testing.assert_allclose(person1[15], [c, r, 0.05], rtol=1e-6)
  kp, _ = grouping.group(heat, tag, dataclasses.replace(PARAMS, refine=False))
  person1 = [p for p in kp if np.array_equal(p[0, :2], people[1, 0])][0]
  np.testing.assert_array_equal(person1[15], [0, 0, 0])


def test_refine_positions_without_scores():
  """refine_scores=False: the weak joint's position (and joint score) is filled, but the person
  score stays the mean over matched joints with the filled one counted as 0."""
  people, heat, tag = _weak_ankle_scene()
  c, r = people[1, 15]
  base = dataclasses.replace(PARAMS, subpixel='none')
  kp_all, scores_all = grouping.group(heat, tag, base)
  kp, scores = grouping.group(heat, tag, dataclasses.replace(base, refine_scores=False))
  i = [n for n, p in enumerate(kp) if np.array_equal(p[0, :2], people[1, 0])][0]
  np.testing.assert_allclose(kp[i, 15], [c, r, 0.05], rtol=1e-6)
  np.testing.assert_allclose(scores[i], 16 / 17, rtol=1e-6)     # 16 peaks of height 1, one 0
  j = [n for n, p in enumerate(kp_all) if np.array_equal(p[0, :2], people[1, 0])][0]
  np.testing.assert_allclose(scores_all[j], (16 + 0.05) / 17, rtol=1e-6)


def test_peaks_one_per_plateau_and_borders():
  x = np.zeros((6, 6, 1), np.float32)
  x[1, 1] = x[1, 2] = 0.8                # two-pixel plateau
  x[4, 4] = x[4, 5] = x[5, 4] = x[5, 5] = 0.5   # 2x2 plateau in the corner
  x[0, 5] = 0.3                          # border peak
  x[2, 2] = 0.7                          # next to a larger value: not a peak
  x[5, 0] = x[4, 1] = 0.2                # diagonal plateau: the earlier pixel in raster order
  got = set(zip(*np.nonzero(grouping.peaks(x)[..., 0] & (x[..., 0] > 0)), strict=True))
  assert got == {(1, 1), (4, 4), (0, 5), (4, 1)}


def test_quarter_pixel_shift():
  heat = np.zeros((16, 16, K), np.float32)
  yy, xx = np.mgrid[:16, :16]
  heat[..., 0] = np.exp(-((xx - 7.3) ** 2 + (yy - 5.0) ** 2) / 2)
  heat[..., 1] = np.exp(-((xx - 0.0) ** 2 + (yy - 8.6) ** 2) / 2)   # on the left border
  kp, _ = grouping.group(heat, np.zeros((16, 16, K, 1), np.float32),
                         dataclasses.replace(PARAMS, refine=False))
  np.testing.assert_allclose(kp[0, 0, :2], [7.25, 5.0])
  np.testing.assert_allclose(kp[0, 1, :2], [0.0, 8.75])


def test_no_detections():
  kp, scores = grouping.group(np.zeros((8, 8, K)), np.zeros((8, 8, K, 2)), PARAMS)
  assert kp.shape == (0, K, 3) and scores.shape == (0,)


def test_ground_truth_maps_of_real_coco_images_give_ap_1(shared_data):
  """GT keypoints of the shared COCO images -> rendered heatmaps and tag maps at the 512 px
  network input (128 px grid) -> grouping -> original pixels -> results -> pycocotools."""
  root = shared_data / 'mmpose' / 'tests' / 'data' / 'coco'
  gt_path = root / 'test_coco.shared.json'
  gt = json.loads(gt_path.read_text())
  side, stride, grid = 512, 4, 128
  ids, kps, scores = [], [], []
  for image in gt['images']:
    h, w = image['height'], image['width']
    anns = [a for a in gt['annotations']
            if a['image_id'] == image['id'] and a['num_keypoints'] > 0]
    kp = np.array([a['keypoints'] for a in anns], np.float32).reshape(-1, K, 3)
    to_input = multi_person.image_to_input(h, w, side)
    kp[..., :2] = transforms.apply_affine(kp[..., :2], to_input)
    per = np.asarray(targets.render_heatmaps(jnp.asarray(kp[:, None]), (grid, grid), stride,
                                             2.0))                      # [P, h, w, K]
    heat = per.max(0)
    tag = np.where(heat > 0, 2.0 * per.argmax(0), BACKGROUND_TAG)[..., None]
    found, sc = grouping.group(heat, tag.astype(np.float32), PARAMS)
    found = found.astype(np.float64)
    found[..., :2] = transforms.apply_affine(found[..., :2],
                                             multi_person.grid_to_image(h, w, side, stride))
    assert len(found) == len(kp)
    ids += [image['id']] * len(found)
    kps.append(found)
    scores.append(sc)
  results = coco_eval.results_from_keypoints(ids, np.concatenate(kps), np.concatenate(scores))
  stats = coco_eval.coco_keypoint_eval(gt_path, results)
  assert stats['AP'] == 1.0 and stats['AR'] == 1.0


@pytest.mark.parametrize('method', ['quarter', 'taylor'])
def test_subpixel_refinement_of_grouped_joints(method):
  """A Gaussian peak at a sub-pixel position: 'taylor' recovers it exactly (the log of a
  Gaussian is quadratic), 'quarter' shifts a quarter pixel towards it, as hgjax.decode does."""
  size, sigma = 24, 1.5
  centre = np.array([[9.3, 14.7]] * K)                     # (u, v) of every joint
  yy, xx = np.mgrid[:size, :size]
  heat = np.stack([np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * sigma ** 2))
                   for u, v in centre], -1).astype(np.float32)
  tag = np.zeros((size, size, K, 1), np.float32)
  params = dataclasses.replace(PARAMS, refine=False, subpixel=method)
  kp, _ = grouping.group(heat, tag, params)
  assert len(kp) == 1
  expected = centre if method == 'taylor' else [[9.25, 14.75]] * K
  np.testing.assert_allclose(kp[0, :, :2], expected, atol=1e-4)
  # decode.heatmap_peaks applies the same rule on the device.
  from hgjax import decode
  coords, _ = decode.heatmap_peaks(jnp.asarray(heat)[None], refine=method)
  np.testing.assert_allclose(np.asarray(coords)[0], kp[0, :, :2], atol=1e-4)
  with pytest.raises(ValueError, match="refine.*'bicubic'"):
    dataclasses.replace(PARAMS, subpixel='bicubic')


def test_dark_refinement_matches_device_decoding_and_resists_noise():
  """'dark' = 'taylor' on Gaussian-smoothed maps: on a clean Gaussian it recovers the centre
  (a Gaussian smoothed by a Gaussian is a Gaussian with the same centre) and agrees with
  hgjax.decode's 'dark'; on noisy maps it lands closer than 'taylor' on the raw maps."""
  from hgjax import decode
  size, sigma = 24, 1.5
  rng = np.random.default_rng(0)
  centre = np.stack([rng.uniform(8, 16, K), rng.uniform(8, 16, K)], -1)   # (u, v) per joint
  yy, xx = np.mgrid[:size, :size]
  heat = np.stack([np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * sigma ** 2))
                   for u, v in centre], -1).astype(np.float32)
  tag = np.zeros((size, size, K, 1), np.float32)
  dark = dataclasses.replace(PARAMS, refine=False, subpixel='dark', blur_sigma=1.0)
  kp, _ = grouping.group(heat, tag, dark)
  np.testing.assert_allclose(kp[0, :, :2], centre, atol=1e-3)
  coords, _ = decode.heatmap_peaks(jnp.asarray(heat)[None], refine='dark', blur_sigma=1.0)
  np.testing.assert_allclose(np.asarray(coords)[0], kp[0, :, :2], atol=1e-3)
  errors = {'taylor': [], 'dark': []}
  for _ in range(20):
    noisy = (heat + rng.normal(0, 0.05, heat.shape)).astype(np.float32)
    for method in errors:
      params = dataclasses.replace(dark, subpixel=method)
      kp, _ = grouping.group(noisy, tag, params)
      errors[method].append(np.linalg.norm(kp[0, :, :2] - centre, axis=-1).mean())
  assert np.mean(errors['dark']) < 0.8 * np.mean(errors['taylor'])
  with pytest.raises(ValueError, match='blur_sigma must be > 0'):
    dataclasses.replace(PARAMS, subpixel='dark', blur_sigma=0.0)
