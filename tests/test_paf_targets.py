"""OpenPose targets (hgjax/paf_targets.py) on hand-computed cases.

Grid: stride 8, a joint at input pixel 8 u + 3.5 sits exactly on cell u (hgjax's grid, the
official heatmap cell centres). Gaussian values: exp(-d^2 / (2 * 7^2)) with d in input pixels,
so d = 8 -> exp(-64 / 98), d^2 = 128 -> exp(-128 / 98), cut where d^2 / 98 > 4.6052.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgjax import paf_targets as pt


def px(u):
  """Input pixel of grid position u (stride 8)."""
  return 8.0 * u + 3.5


def people(*joints_per_person, parts=18):
  """[1, P, parts, 3] with the given {part: (u, v, vis)} per person (grid units)."""
  out = np.zeros((1, len(joints_per_person), parts, 3), np.float32)
  for p, joints in enumerate(joints_per_person):
    for part, (u, v, vis) in joints.items():
      out[0, p, part] = (px(u), px(v), vis)
  return out


def test_tables():
  # 18-part order from COCO-17: neck from the shoulders, eyes / ears right first.
  assert pt.COCO18_FROM_COCO17[14:] == (2, 1, 4, 3)
  assert pt.COCO18_FROM_COCO17[2] == 6 and pt.COCO18_FROM_COCO17[5] == 5
  assert sorted(pt.COCO17_FROM_COCO18) == sorted(set(range(18)) - {1})
  assert len(pt.LIMBS) == 19 and len(pt.PARSER_LIMBS) == 19
  # The parser's limbs read the training channels of the same limb.
  for a, b, cx, cy in pt.PARSER_LIMBS:
    assert pt.LIMBS[cx // 2] == (a, b) and cx % 2 == 0 and cy == cx + 1
  assert sorted(cx // 2 for _, _, cx, _ in pt.PARSER_LIMBS) == list(range(19))
  # Flip: Neck->RHip (0) <-> Neck->LHip (3), RSho->REar (9) <-> LSho->LEar (13), Neck->Nose fixed.
  assert pt.LIMB_FLIP[0] == 3 and pt.LIMB_FLIP[9] == 13 and pt.LIMB_FLIP[14] == 14
  assert pt.PAF_FLIP[0:2] == (6, 7) and pt.PAF_FLIP_SIGN[0:2] == (-1.0, 1.0)
  assert all(pt.PAF_FLIP[pt.PAF_FLIP[i]] == i for i in range(38))
  assert pt.HEATMAP_FLIP[2] == 5 and pt.HEATMAP_FLIP[14] == 15 and pt.HEATMAP_FLIP[18] == 18


def test_coco17_to_18_neck_rule():
  kp = np.zeros((3, 17, 3), np.float32)
  kp[:, :, :2] = np.arange(17)[:, None] * 10
  kp[:, :, 2] = 2
  kp[0, 5] = (10, 20, 2)
  kp[0, 6] = (30, 40, 1)
  kp[1, 6, 2] = 0                        # right shoulder unlabelled: no neck
  kp[2, 5, 2] = 0                        # left shoulder unlabelled: no neck
  out = pt.coco17_to_18(kp)
  assert isinstance(out, np.ndarray) and out.shape == (3, 18, 3)
  np.testing.assert_array_equal(out[0, 1], (20, 30, 1))     # mean, v = min(2, 1)
  np.testing.assert_array_equal(out[1, 1], (0, 0, 0))
  np.testing.assert_array_equal(out[2, 1], (0, 0, 0))
  np.testing.assert_array_equal(out[1, 2], kp[1, 6])         # RShoulder = COCO 6, as given
  np.testing.assert_array_equal(out[0, 14], kp[0, 2])        # REye = COCO 2
  np.testing.assert_array_equal(out[0, 17], kp[0, 3])        # LEar = COCO 3
  jax_out = pt.coco17_to_18(jnp.asarray(kp))
  np.testing.assert_array_equal(np.asarray(jax_out), out)
  np.testing.assert_array_equal(pt.coco18_to_17(out), kp)    # round trip drops the neck


def test_single_joint_gaussian_values():
  kp = people({0: (2, 1, 2)})
  maps = np.asarray(pt.render_confidence_maps(kp, (4, 8), 8, 7.0))
  assert maps.shape == (1, 4, 8, 19) and maps.dtype == np.float32
  nose = maps[0, ..., 0]
  assert nose[1, 2] == pytest.approx(1.0)
  assert nose[1, 3] == pytest.approx(math.exp(-64 / 98), rel=1e-6)      # d = 8
  assert nose[2, 3] == pytest.approx(math.exp(-128 / 98), rel=1e-6)     # d^2 = 128
  assert nose[1, 4] == pytest.approx(math.exp(-256 / 98), rel=1e-6)     # d = 16
  assert nose[2, 4] == pytest.approx(math.exp(-320 / 98), rel=1e-6)     # d^2 = 320 <= 451.3
  assert nose[1, 5] == 0.0                                              # d^2 = 576 > 451.3
  assert nose[3, 4] == 0.0                                              # d^2 = 512 > 451.3
  assert nose[3, 3] == pytest.approx(math.exp(-(64 + 256) / 98), rel=1e-6)
  assert np.count_nonzero(maps[0, ..., 1:18]) == 0


def test_sum_clip_versus_max_and_background():
  kp = people({0: (1, 1, 2)}, {0: (4, 1, 2)})        # two noses 24 px apart
  clip = np.asarray(pt.render_confidence_maps(kp, (3, 8), 8, 7.0, mode='sum_clip'))[0]
  mx = np.asarray(pt.render_confidence_maps(kp, (3, 8), 8, 7.0, mode='max'))[0]
  e8, e16 = math.exp(-64 / 98), math.exp(-256 / 98)
  # Cell 2: 8 px from one, 16 px from the other.
  assert clip[1, 2, 0] == pytest.approx(e8 + e16, rel=1e-6)
  assert mx[1, 2, 0] == pytest.approx(e8, rel=1e-6)
  # Cell 1: 1 + exp(-576 / 98) cut -> 1; cell 0: e8 + 0 (32 px: cut).
  assert clip[1, 1, 0] == pytest.approx(1.0) and mx[1, 1, 0] == pytest.approx(1.0)
  assert clip[1, 0, 0] == pytest.approx(e8, rel=1e-6)
  # Closer people: the sum exceeds 1 and is clipped.
  close = people({0: (1, 1, 2)}, {0: (3, 1, 2)})
  clip2 = np.asarray(pt.render_confidence_maps(close, (3, 8), 8, 7.0, mode='sum_clip'))[0]
  assert clip2[1, 2, 0] == 1.0                       # 2 * exp(-64 / 98) = 1.04 -> 1
  assert clip2[0, 2, 0] == pytest.approx(2 * math.exp(-128 / 98), rel=1e-6)
  # Background = max(1 - max over parts, 0).
  assert mx[1, 1, 18] == pytest.approx(0.0, abs=1e-6)
  assert mx[1, 2, 18] == pytest.approx(1 - e8, rel=1e-5)
  assert clip[1, 2, 18] == pytest.approx(max(1 - (e8 + e16), 0), rel=1e-5)
  assert mx[0, 7, 18] == 1.0


def test_unlabelled_joints_render_nothing():
  kp = people({0: (2, 1, 0), 1: (2, 2, 0), 2: (5, 2, 0)}, {1: (6, 1, 2), 2: (6, 3, 0)})
  maps = np.asarray(pt.render_confidence_maps(kp, (4, 8), 8, 7.0))[0]
  pafs = np.asarray(pt.render_pafs(kp, (4, 8), 8))[0]
  assert np.count_nonzero(maps[..., 0]) == 0 and np.count_nonzero(maps[..., 2]) == 0
  assert maps[1, 6, 1] == pytest.approx(1.0)         # the labelled neck renders
  assert np.count_nonzero(pafs) == 0                  # no limb has two labelled ends


def test_horizontal_limb_support():
  # Limb 6 = Neck (1) -> RShoulder (2), channels 12 (x) and 13 (y). A = (2, 3), B = (6, 3).
  kp = people({1: (2, 3, 2), 2: (6, 3, 2)})
  paf = np.asarray(pt.render_pafs(kp, (8, 10), 8, 1.0))[0]
  assert paf.shape == (8, 10, 38) and paf.dtype == np.float32
  # Box: x in [round(2 - 1), round(6 + 1)) = [1, 7), y in [round(3 - 1), round(3 + 1)) = [2, 4);
  # distance to the line y = 3 is 0 or 1 <= 1 for rows 2, 3; row 4 (distance 1) is outside the
  # box. So rows 2-3, columns 1-6, value (1, 0).
  expected = np.zeros((8, 10))
  expected[2:4, 1:7] = 1
  np.testing.assert_array_equal(paf[..., 12], expected)
  np.testing.assert_array_equal(paf[..., 13], 0)
  assert np.count_nonzero(np.delete(paf, [12, 13], axis=-1)) == 0


def test_diagonal_limb_support():
  # Limb 7 = RShoulder (2) -> RElbow (3), channels 14, 15. A = (1, 1), B = (5, 3):
  # v = (2, 1) / sqrt(5); |(g - A) x v| = |2 (gy - 1) - (gx - 1)| / sqrt(5) <= 1, i.e.
  # |2 gy - gx - 1| <= 2; box x in [0, 6), y in [0, 4).
  kp = people({2: (1, 1, 2), 3: (5, 3, 2)})
  paf = np.asarray(pt.render_pafs(kp, (6, 8), 8, 1.0))[0]
  cells = {0: (0, 1), 1: (0, 1, 2, 3), 2: (1, 2, 3, 4, 5), 3: (3, 4, 5)}   # row: columns
  expected = np.zeros((6, 8), bool)
  for row, cols in cells.items():
    expected[row, list(cols)] = True
  np.testing.assert_array_equal(paf[..., 14] != 0, expected)
  np.testing.assert_allclose(paf[..., 14][expected], 2 / math.sqrt(5), rtol=1e-6)
  np.testing.assert_allclose(paf[..., 15][expected], 1 / math.sqrt(5), rtol=1e-6)


def test_overwrite_versus_average_for_crossing_people():
  # Limb 7 of person 0 horizontal through row 3 (A = (1, 3), B = (6, 3)), of person 1 vertical
  # through column 3 (A = (3, 0), B = (3, 6)); they cross at cell (3, 3).
  kp = people({2: (1, 3, 2), 3: (6, 3, 2)}, {2: (3, 0, 2), 3: (3, 6, 2)})
  over = np.asarray(pt.render_pafs(kp, (8, 8), 8, 1.0, mode='overwrite'))[0]
  avg = np.asarray(pt.render_pafs(kp, (8, 8), 8, 1.0, mode='average'))[0]
  np.testing.assert_allclose(over[3, 3, 14:16], (0, 1))           # the last person wins
  np.testing.assert_allclose(avg[3, 3, 14:16], (0.5, 0.5))        # the mean of both
  np.testing.assert_allclose(over[3, 1, 14:16], (1, 0))           # person 0 only
  np.testing.assert_allclose(avg[3, 1, 14:16], (1, 0))
  np.testing.assert_allclose(over[0, 3, 14:16], (0, 1))           # person 1 only
  np.testing.assert_allclose(avg[5, 3, 14:16], (0, 1))
  # Drawn in the other order, overwrite keeps person 0's vector at the crossing.
  swapped = np.asarray(pt.render_pafs(kp[:, ::-1], (8, 8), 8, 1.0, mode='overwrite'))[0]
  np.testing.assert_allclose(swapped[3, 3, 14:16], (1, 0))


def test_coincident_limb_ends_draw_nothing():
  kp = people({2: (3, 3, 2), 3: (3, 3, 2)}, {2: (1, 1, 2), 3: (5, 1, 2)})
  for mode in pt.PAF_MODES:
    paf = np.asarray(pt.render_pafs(kp, (6, 8), 8, 1.0, mode=mode))[0]
    assert np.all(np.isfinite(paf))
    np.testing.assert_allclose(paf[3, 3, 14:16], 0)                # A == B: no contribution
    np.testing.assert_allclose(paf[1, 2, 14:16], (1, 0))           # the other person's limb


def test_flip_back():
  # A prediction on the mirrored image: RShoulder (2) peak at (row 2, col 1) and limb 7
  # (RSho -> RElb, channels 14, 15) pointing +x along row 2, columns 1-4, in a 5 x 8 grid.
  heat = np.zeros((5, 8, 19), np.float32)
  heat[2, 1, 2] = 1
  heat[..., 18] = 0.5
  paf = np.zeros((5, 8, 38), np.float32)
  paf[2, 1:5, 14] = 1
  paf[2, 1:5, 15] = 0.25
  back_heat, back_paf = pt.flip_back(heat, paf)
  assert back_heat[2, 6, 5] == 1 and back_heat[..., 2].sum() == 0     # LShoulder, column 8-1-1
  np.testing.assert_array_equal(back_heat[..., 18], 0.5)
  # It is LSho -> LElb (limb 11, channels 22, 23) on columns 3-6, pointing -x.
  np.testing.assert_array_equal(back_paf[2, 3:7, 22], -1)
  np.testing.assert_array_equal(back_paf[2, 3:7, 23], 0.25)
  assert np.count_nonzero(back_paf) == 8
  jax_heat, jax_paf = pt.flip_back(jnp.asarray(heat), jnp.asarray(paf))
  np.testing.assert_array_equal(np.asarray(jax_paf), back_paf)
  np.testing.assert_array_equal(np.asarray(jax_heat), back_heat)


def test_confidence_maps_of_a_mirrored_scene_flip_back():
  # People at integer grid positions; mirror x -> W - 1 - x (input px) with R/L swapped. (The
  # PAFs are not mirror-exact: the official box [round(min - 1), round(max + 1)) is one-sided.)
  rng = np.random.default_rng(0)
  kp = np.zeros((1, 2, 18, 3), np.float32)
  kp[..., :2] = px(rng.integers(1, 10, (1, 2, 18, 2)))
  kp[..., 2] = 2
  mirrored = kp[:, :, list(pt.FLIP_PARTS)].copy()
  mirrored[..., 0] = 8 * 12 - 1 - mirrored[..., 0]
  heat = pt.render_confidence_maps(kp, (12, 12), 8, 7.0)
  heat_m, _ = pt.flip_back(pt.render_confidence_maps(mirrored, (12, 12), 8, 7.0),
                           jnp.zeros((1, 12, 12, 38)))
  np.testing.assert_allclose(np.asarray(heat_m), np.asarray(heat), atol=1e-6)


def test_jit_and_batch_shapes():
  kp = np.zeros((3, 5, 18, 3), np.float32)
  kp[1, 2] = people({p: (p % 5 + 1, p // 5 + 1, 2) for p in range(18)})[0, 0]

  @jax.jit
  def render(keypoints):
    return (pt.render_confidence_maps(keypoints, (6, 7), 8, 7.0, mode='sum_clip'),
            pt.render_pafs(keypoints, (6, 7), 8, 1.0, mode='overwrite'))

  heat, paf = render(jnp.asarray(kp))
  assert heat.shape == (3, 6, 7, 19) and paf.shape == (3, 6, 7, 38)
  assert heat.dtype == jnp.float32 and paf.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(heat[0, ..., 18]), 1)     # nobody: all background
  assert float(jnp.abs(paf[1]).sum()) > 0 and float(jnp.abs(paf[0]).sum()) == 0
  eager = pt.render_pafs(kp, (6, 7), 8, 1.0, mode='overwrite')
  np.testing.assert_allclose(np.asarray(paf), np.asarray(eager), atol=1e-6)


def test_bad_modes():
  kp = np.zeros((1, 1, 18, 3), np.float32)
  with pytest.raises(ValueError, match='sum'):
    pt.render_confidence_maps(kp, (2, 2), 8, 7.0, mode='mean')
  with pytest.raises(ValueError, match='overwrite'):
    pt.render_pafs(kp, (2, 2), 8, mode='max')
