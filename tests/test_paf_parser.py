"""The OpenPose parser (hgjax/paf_parser.py) against the official python parser and by hand.

tests/data/paf_parser_cases.npz holds constructed heatmaps / PAFs (two and three people,
person order, crossing limbs, spurious peaks, weak limbs, plateaus, pruning, fragments merged,
rows sharing a part, partB-only matches, the distance prior, clutter, nobody) and what the
official python parser (Hzzone/pytorch-openpose src/body.py at 5ee71dc, run unchanged on exactly
these maps) returned: written by tests/data/make_paf_parser_cases.py, which explains how.
"""

from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage

from hgjax import paf_parser as pp
from hgjax.paf_targets import PARSER_LIMBS

CASES = np.load(Path(__file__).parent / 'data' / 'paf_parser_cases.npz')
NAMES = [str(n) for n in CASES['names']]
BRANCHES = [str(n) for n in CASES['branch_names']]


def case(name):
  i = NAMES.index(name)
  return {k.split('/')[1]: CASES[k] for k in CASES.files if k.startswith(f'case{i}/')}


def official_people(c):
  """The official candidate / subset as (people [P, 18, 3], scores [P]), in subset order."""
  ids = c['subset'][:, :18].astype(int)
  cand = c['candidate'][:, :3] if len(c['candidate']) else np.zeros((1, 3))
  people = np.where((ids >= 0)[..., None], cand[np.maximum(ids, 0)], 0.0)
  return people.reshape(-1, 18, 3), c['subset'][:, 18]


@pytest.mark.parametrize('name', NAMES)
def test_equals_the_official_python_parser(name):
  c = case(name)
  candidates = pp.find_peaks(c['heatmaps'])
  np.testing.assert_array_equal(candidates[:, :3], c['candidate'][:, :3].reshape(-1, 3))
  people, scores = pp.parse(c['heatmaps'], c['pafs'], set_part_a=False)
  expected, expected_scores = official_people(c)
  assert people.shape == expected.shape                 # the same people, in the same order
  np.testing.assert_array_equal(people, expected)
  np.testing.assert_array_equal(scores, expected_scores)


@pytest.mark.parametrize('name', NAMES)
def test_default_differs_only_by_the_part_a_fix(name):
  """With `set_part_a` (default) a row that only holds B of a limb gains A; nothing else."""
  c = case(name)
  people, scores = pp.parse(c['heatmaps'], c['pafs'])
  expected, expected_scores = official_people(c)
  assert people.shape == expected.shape
  gained = (people[..., 2] > 0) & (expected[..., 2] == 0)
  np.testing.assert_array_equal(people[~gained], expected[~gained])
  assert not ((people[..., 2] == 0) & (expected[..., 2] > 0)).any()
  changed = gained.any(-1)
  np.testing.assert_array_equal(scores[~changed], expected_scores[~changed])
  assert np.all(scores[changed] > expected_scores[changed])
  if name == 'b_only':       # the head row gains both shoulders through limbs 17 and 18
    assert changed.tolist() == [False, True]
    assert np.nonzero(gained[1])[0].tolist() == [2, 5]
  elif name != 'clutter_1':
    assert not changed.any()


def test_cases_cover_what_they_claim():
  def runs(name, branch):
    return int(case(name)['branches'][BRANCHES.index(branch)])

  assert runs('merge', 'merge') == 2 and runs('not_disjoint', 'found2_not_disjoint') == 1
  assert runs('person_order', 'special_k') == 2 and runs('nobody', 'special_k') == 19
  assert runs('pruned', 'pruned') == 1 and len(case('pruned')['subset']) == 1
  assert len(case('nobody')['subset']) == 0
  # Person order: rows are not left to right (neck x of each row).
  people, _ = official_people(case('person_order'))
  assert people[:, 1, 0].tolist() == [48, 80, 16]
  # Plateau: neighbouring nose pixels tie exactly after smoothing, and all are candidates.
  c = case('plateau')
  smooth = scipy.ndimage.gaussian_filter(c['heatmaps'][..., 0].astype(np.float64), sigma=3)
  noses = pp.find_peaks(c['heatmaps'])
  noses = noses[noses[:, 3] == 0]
  rows = noses[:, 1].astype(int)
  same_row = noses[rows == rows[0]]
  assert len(same_row) >= 3 and np.all(np.diff(same_row[:, 0]) == 1)
  values = smooth[same_row[:, 1].astype(int), same_row[:, 0].astype(int)]
  assert np.all(values == values[0])


def test_weak_limb_needs_nine_of_ten_samples():
  c = case('weak_limb')
  cands = pp.find_peaks(c['heatmaps'])
  left = cands[cands[:, 0] < 40]

  def pair(limb):
    a, b, cx, cy = PARSER_LIMBS[limb]
    score, ok = pp.limb_scores(left[left[:, 3] == a], left[left[:, 3] == b],
                               c['pafs'][..., cx], c['pafs'][..., cy], 72)
    assert score.shape == (1, 1)
    return ok[0, 0]

  assert not pair(6)        # neck -> r-hip: 2 of 10 samples removed (8 above thre2)
  assert pair(7)            # r-hip -> r-knee: 1 removed (9 above)
  people, _ = pp.parse(c['heatmaps'], c['pafs'])
  assert not np.any((people[:, 1, 2] > 0) & (people[:, 8, 2] > 0) & (people[:, 1, 0] < 40))


def test_the_distance_prior_uses_the_map_height_or_image_height():
  c = case('distance_prior')
  people, _ = pp.parse(c['heatmaps'], c['pafs'])
  left = people[np.argmin(people[:, 1, 0])]
  assert left[3, 2] == 0                                # long weak upper arm rejected
  people, _ = pp.parse(c['heatmaps'], c['pafs'], image_height=1000)
  left = people[np.argmin(people[:, 1, 0])]
  assert left[3, 2] > 0                                 # no penalty with a tall image


def _connections(by_limb, num_limbs=19):
  return [np.array(by_limb.get(k, []), np.float64).reshape(-1, 3) for k in range(num_limbs)]


def _candidates(parts_scores):
  """[N, 4] candidates (0, 0, score, part) from (part, score) pairs."""
  return np.array([(0, 0, s, p) for p, s in parts_scores], np.float64)


def test_three_matching_rows_use_the_first_two():
  """The official code raises IndexError here (subset_idx has two slots); hgjax treats the
  first two matching rows as the two-row case. Made with a custom limb list: with the COCO
  limbSeq order three rows never match (see the module docstring)."""
  limbs = [(0, 1), (0, 3), (0, 3), (4, 5), (4, 3)]
  cands = _candidates([(0, 0.5), (1, 0.5), (0, 0.5), (3, 0.5), (4, 0.5), (5, 0.5)])
  conns = _connections({0: [(0, 1, 1.0)], 1: [(2, 3, 1.0)], 2: [(0, 3, 1.0)],
                        3: [(4, 5, 1.0)], 4: [(4, 3, 1.0)]}, 5)
  subset = pp.assemble(conns, cands, 'python', limbs=limbs)
  # Limb 2 matches rows 0 (A) and 1 (B), both holding part 0: not disjoint, so row 0 gets B
  # (id 3 now in rows 0 and 1). Limb 4 matches rows 2 (A), 0 and 1 (B): rows 0 and 1 are used,
  # not disjoint: row 0 gets B again (count + 1, score + S(B) + conn).
  assert subset.shape == (3, 20)
  np.testing.assert_array_equal(subset[0, :6], [0, 1, -1, 3, -1, -1])
  assert subset[0, 19] == 4 and subset[0, 18] == pytest.approx(2.0 + 1.5 + 1.5)
  np.testing.assert_array_equal(subset[1, :6], [2, -1, -1, 3, -1, -1])
  np.testing.assert_array_equal(subset[2, :6], [-1, -1, -1, -1, 4, 5])
  assert subset[1, 19] == 2 and subset[2, 19] == 2


def test_part_a_is_set_when_only_part_b_matched():
  limbs = [(0, 1), (2, 1), (1, 3)]
  cands = _candidates([(0, 0.5), (1, 0.6), (2, 0.7), (3, 0.8)])
  conns = _connections({0: [(0, 1, 1.0)], 1: [(2, 1, 0.9)], 2: [(1, 3, 0.8)]}, 3)
  fixed = pp.assemble(conns, cands, 'python', limbs=limbs)
  official = pp.assemble(conns, cands, 'python', limbs=limbs, set_part_a=False)
  # Limb 1 (2 -> 1): only B (id 1) is in a row; the official code leaves the row alone.
  np.testing.assert_array_equal(official[:, :4], [[0, 1, -1, 3]])
  assert official[0, 19] == 3 and official[0, 18] == pytest.approx(2.1 + 1.6)
  np.testing.assert_array_equal(fixed[:, :4], [[0, 1, 2, 3]])
  assert fixed[0, 19] == 4 and fixed[0, 18] == pytest.approx(2.1 + 1.6 + 1.6)
  # A row whose A slot already holds another candidate is left alone.
  cands2 = _candidates([(0, 0.5), (1, 0.6), (2, 0.7), (3, 0.8), (2, 0.4)])
  conns2 = _connections({0: [(0, 1, 1.0)], 1: [(2, 1, 0.9)], 2: [(4, 1, 0.3)]}, 3)
  limbs2 = [(0, 1), (2, 1), (2, 1)]
  subset = pp.assemble(conns2, cands2, 'python', limbs=limbs2)
  np.testing.assert_array_equal(subset[:, :4], [[0, 1, 2, -1]])
  assert subset[0, 19] == 3


def test_matlab_peaks():
  heat = np.zeros((64, 64, 19))
  m = heat[..., 0]
  m[10, 10] = 0.5                        # a peak
  m[20, 20] = m[20, 21] = 0.6            # a plateau: strict >, no peak
  m[5, 30] = 0.09                        # below thre1
  m[5, 40] = 0.1                         # kept (values < thre1 are zeroed)
  m[30, 5], m[30, 9] = 0.3, 0.9          # 4 px: the later one goes, though higher
  m[40, 5], m[40, 11] = 0.3, 0.3         # 6 px: removed (<= 6)
  m[50, 5], m[50, 12] = 0.3, 0.3         # 7 px: both kept
  m[58, 5], m[58, 10], m[58, 15] = 0.3, 0.3, 0.3   # the middle one goes; it suppresses nothing
  heat[30, 7, 1] = 0.4                   # another part: not suppressed by part 0
  cands = pp.find_peaks(heat, 'matlab')
  expected = [(40, 5, 0.1, 0), (10, 10, 0.5, 0), (5, 30, 0.3, 0), (5, 40, 0.3, 0),
              (5, 50, 0.3, 0), (12, 50, 0.3, 0), (5, 58, 0.3, 0), (15, 58, 0.3, 0),
              (7, 30, 0.4, 1)]
  np.testing.assert_array_equal(cands, expected)


def test_matlab_and_python_limb_scores():
  # A = (10, 10); B1 = (19, 10): samples at x = 10..19 on row 10; B2 = (10, 19) vertical.
  paf_x, paf_y = np.zeros((30, 30)), np.zeros((30, 30))
  paf_x[10, 10:20] = 1.0
  paf_x[10, 13] = 0.0                    # 9 of 10 samples above thre2
  a, b = [(10, 10)], [(19, 10), (10, 19), (10, 10)]
  score, ok = pp.limb_scores(a, b, paf_x, paf_y, 100, 'python')
  assert score[0, 0] == pytest.approx(0.9) and ok[0].tolist() == [True, False, False]
  score, ok = pp.limb_scores(a, b, paf_x, paf_y, 100, 'matlab')
  assert score[0, 0] == pytest.approx(1.0) and ok[0].tolist() == [True, False, False]
  # Distance prior with H = 10: min(0.5 * 10 / 9 - 1, 0) = -4 / 9.
  score, _ = pp.limb_scores(a, b, paf_x, paf_y, 10, 'python')
  assert score[0, 0] == pytest.approx(0.9 - 4 / 9)
  score, _ = pp.limb_scores(a, b, paf_x, paf_y, 10, 'matlab')
  assert score[0, 0] == pytest.approx(1.0 - 4 / 9)
  paf_x[10, 14] = 0.0                    # 8 of 10: rejected by both
  for style in pp.STYLES:
    assert not pp.limb_scores(a, b, paf_x, paf_y, 100, style)[1].any()


def test_matlab_assembly_with_the_coco_limbs():
  # Candidates: 0 neck, 1 r-shoulder, 2 r-elbow, 3 r-eye, 4 r-ear; no nose, no left side.
  cands = _candidates([(1, 0.9), (2, 0.8), (3, 0.7), (14, 0.5), (16, 0.6)])
  conns = _connections({0: [(0, 1, 0.9)], 2: [(1, 2, 0.8)], 14: [(3, 4, 0.7)],
                        17: [(1, 4, 0.6)]})
  subset = pp.assemble(conns, cands, 'matlab')
  # Row 0: neck -> r-shoulder (new), r-elbow added; limb 17 fills its empty r-ear slot without
  # count or score. Row 1: limb 13 (nose -> r-eye) has no nose anywhere: a one-part r-eye row;
  # limb 14 adds the ear; limb 17 fills its empty r-shoulder slot. No merge.
  assert subset.shape == (2, 20)
  row0, row1 = subset
  assert {p: row0[p] for p in np.nonzero(row0[:18] >= 0)[0]} == {1: 0, 2: 1, 3: 2, 16: 4}
  assert row0[19] == 3 and row0[18] == pytest.approx(0.9 + 0.8 + 0.9 + 0.7 + 0.8)
  assert {p: row1[p] for p in np.nonzero(row1[:18] >= 0)[0]} == {2: 1, 14: 3, 16: 4}
  assert row1[19] == 2 and row1[18] == pytest.approx(0.5 + 0.6 + 0.7)
  np.testing.assert_array_equal(pp.prune(subset, 'matlab'), subset[:1])   # count 2 < 3
  # The python rules merge the two fragments instead (disjoint rows, limb 17).
  merged = pp.assemble(conns, cands, 'python')
  assert merged.shape == (1, 20) and merged[0, 19] == 5
  assert merged[0, 18] == pytest.approx(0.9 + 0.8 + 0.9 + 0.7 + 0.8 + 0.5 + 0.6 + 0.7 + 0.6)


def test_matlab_assembly_sets_b_in_every_row_holding_a():
  limbs = [(0, 1), (2, 1), (1, 3)]
  cands = _candidates([(0, 0.5), (1, 0.6), (2, 0.7), (3, 0.8)])
  conns = _connections({0: [(0, 1, 1.0)], 1: [(2, 1, 0.9)], 2: [(1, 3, 0.8)]}, 3)
  subset = pp.assemble(conns, cands, 'matlab', limbs=limbs)
  # Limb 1: no row holds A (id 2): a new row {2, 1} although id 1 is in row 0 (no test on B).
  # Limb 2: both rows hold A (id 1): both get B, count + 1, score + S(B) + conn.
  np.testing.assert_array_equal(subset[:, :4], [[0, 1, -1, 3], [-1, 1, 2, 3]])
  np.testing.assert_array_equal(subset[:, 19], [3, 3])
  np.testing.assert_allclose(subset[:, 18], [2.1 + 1.6, 2.2 + 1.6])


def test_prune_thresholds():
  subset = np.full((5, 20), -1.0)
  subset[:, 18:] = [(1.6, 4), (1.5, 4), (0.9, 3), (0.5, 3), (0.9, 2)]
  np.testing.assert_array_equal(pp.prune(subset, 'python')[:, 18:], [(1.6, 4)])
  np.testing.assert_array_equal(pp.prune(subset, 'matlab')[:, 18:],
                                [(1.6, 4), (1.5, 4), (0.9, 3)])


def test_matlab_style_on_constructed_maps():
  c = case('two_people')
  python, _ = pp.parse(c['heatmaps'], c['pafs'])
  matlab, _ = pp.parse(c['heatmaps'], c['pafs'], style='matlab')
  assert len(matlab) == 2
  order = [np.argmin(np.abs(python[:, 1, 0] - x)) for x in matlab[:, 1, 0]]
  np.testing.assert_array_equal(matlab[..., :2], python[order][..., :2])
  # The 3-part person survives the Matlab pruning (count >= 3), not the python one.
  c = case('pruned')
  people, _ = pp.parse(c['heatmaps'], c['pafs'], style='matlab')
  parts = [tuple(np.nonzero(p[:, 2] > 0)[0]) for p in people]
  assert (1, 2, 3) in parts
  assert (1, 2, 3) not in [tuple(np.nonzero(p[:, 2] > 0)[0])
                           for p in pp.parse(c['heatmaps'], c['pafs'])[0]]


def test_bad_input_and_nobody():
  heat, paf = np.zeros((32, 32, 19)), np.zeros((32, 32, 38))
  with pytest.raises(ValueError, match=r'\(32, 32, 18\)'):
    pp.parse(heat[..., :18], paf)
  with pytest.raises(ValueError, match=r'\(32, 32, 19\)'):
    pp.parse(heat, paf[..., :19])
  with pytest.raises(ValueError, match=r'\(16, 32, 38\)'):
    pp.parse(heat, paf[:16])
  with pytest.raises(ValueError, match='style'):
    pp.parse(heat, paf, style='cpp')
  for style in pp.STYLES:
    people, scores = pp.parse(heat, paf, style=style)
    assert people.shape == (0, 18, 3) and scores.shape == (0,)
