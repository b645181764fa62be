"""OpenPose (CVPR'17) training targets: confidence maps and part affinity fields (jnp, jit-able).

Spec: shared/docs/methods/openpose.md sections 2-3 (official code: CMU caffe_train
`cpm_data_transformer.cpp`, the 2019 `oPDataTransformer.cpp`). Vectorised over batch, people
and limbs; nothing loops over people or limbs in Python.

Part order (18 parts, COCO-18 of the official code; eyes and ears right first):
0 Nose, 1 Neck, 2 RShoulder, 3 RElbow, 4 RWrist, 5 LShoulder, 6 LElbow, 7 LWrist, 8 RHip,
9 RKnee, 10 RAnkle, 11 LHip, 12 LKnee, 13 LAnkle, 14 REye, 15 LEye, 16 REar, 17 LEar; heatmap
channel 18 = background. The neck is the mean of the two shoulders.

Grid: hgjax's 'continuous' convention (`hgjax.targets.to_grid`): input pixel x sits at grid
u = (x + 0.5) / stride - 0.5, so cell g is centred on input pixel stride * (g + 0.5) - 0.5,
which for stride 8 is the official heatmap cell centre 3.5 + 8 g.
"""

import jax
import jax.numpy as jnp
import numpy as np

from hgjax.targets import to_grid

NUM_PARTS = 18
NUM_LIMBS = 19
PART_NAMES = (
    'nose', 'neck', 'r_shoulder', 'r_elbow', 'r_wrist', 'l_shoulder', 'l_elbow', 'l_wrist',
    'r_hip', 'r_knee', 'r_ankle', 'l_hip', 'l_knee', 'l_ankle', 'r_eye', 'l_eye', 'r_ear',
    'l_ear',
)
# COCO-17 source of each of the 18 parts; -1 = the neck (mean of COCO 5 and 6, the shoulders).
COCO18_FROM_COCO17 = (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
# 18-part index of each COCO-17 joint (the inverse table; the neck has no COCO joint).
COCO17_FROM_COCO18 = tuple(COCO18_FROM_COCO17.index(j) for j in range(17))

# The 19 limbs (part a -> part b, 0-based 18-part ids) in the training / network channel order
# (caffe_train `mid_1` / `mid_2`); limb c has PAF channels 2c (x) and 2c + 1 (y).
LIMBS = (
    (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 2), (2, 3), (3, 4), (2, 16),
    (1, 5), (5, 6), (6, 7), (5, 17), (1, 0), (0, 14), (0, 15), (14, 16), (15, 17),
)
# The parsers' limb order (`limbSeq` of the python / Matlab / C++ parsers, made 0-based) with
# the PAF channels (x, y) each reads (`mapIdx - 19`): (part a, part b, channel x, channel y).
PARSER_LIMBS = (
    (1, 2, 12, 13), (1, 5, 20, 21), (2, 3, 14, 15), (3, 4, 16, 17), (5, 6, 22, 23),
    (6, 7, 24, 25), (1, 8, 0, 1), (8, 9, 2, 3), (9, 10, 4, 5), (1, 11, 6, 7),
    (11, 12, 8, 9), (12, 13, 10, 11), (1, 0, 28, 29), (0, 14, 30, 31), (14, 16, 34, 35),
    (0, 15, 32, 33), (15, 17, 36, 37), (2, 16, 18, 19), (5, 17, 26, 27),
)

# Horizontal flip: part j <-> its mirror (R/L swapped), background fixed.
FLIP_PARTS = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)
HEATMAP_FLIP = FLIP_PARTS + (18,)
# Limb c <-> the limb joining the mirrored parts (same direction).
LIMB_FLIP = tuple(LIMBS.index((FLIP_PARTS[a], FLIP_PARTS[b])) for a, b in LIMBS)
# PAF channel permutation and sign: flipped back, channel i takes channel PAF_FLIP[i] of the
# mirrored maps times PAF_FLIP_SIGN[i] (x components negated).
PAF_FLIP = tuple(2 * LIMB_FLIP[c] + k for c in range(NUM_LIMBS) for k in range(2))
PAF_FLIP_SIGN = (-1.0, 1.0) * NUM_LIMBS

# exp(-e) is drawn only where e = d^2 / (2 sigma^2) <= 4.6052 (= ln 100 as the official code
# writes it: values below 0.01 are cut).
LOG_100 = 4.6052
CONFIDENCE_MODES = ('sum_clip', 'max')
PAF_MODES = ('overwrite', 'average')


def _xp(x):
  """numpy for numpy inputs (host-side codecs), jax.numpy otherwise."""
  return np if isinstance(x, np.ndarray) else jnp


def coco17_to_18(keypoints):
  """COCO-17 people -> the 18-part order with the neck.

  Args:
    keypoints: [..., 17, 3] (x, y, v), numpy or jnp; v > 0 marks a labelled joint.
  Returns:
    [..., 18, 3] of the same array type: parts in the 18-part order; the neck is the mean of the
    shoulders with v = min(v_l, v_r) when both shoulders are labelled, else (0, 0, 0).
  """
  xp = _xp(keypoints)
  src = np.array([max(j, 0) for j in COCO18_FROM_COCO17])
  out = keypoints[..., src, :]
  lsho, rsho = keypoints[..., 5, :], keypoints[..., 6, :]
  both = (lsho[..., 2] > 0) & (rsho[..., 2] > 0)
  neck = xp.concatenate([(lsho[..., :2] + rsho[..., :2]) / 2,
                         xp.minimum(lsho[..., 2:], rsho[..., 2:])], axis=-1)
  neck = xp.where(both[..., None], neck, xp.zeros_like(neck))
  if xp is np:
    out = out.copy()
    out[..., 1, :] = neck
    return out
  return out.at[..., 1, :].set(neck)


def coco18_to_17(people):
  """18-part people -> COCO-17 (the neck dropped).

  Args:
    people: [..., 18, C] (x, y, v or score, ...), numpy or jnp.
  Returns:
    [..., 17, C] in the COCO-17 joint order.
  """
  return people[..., np.array(COCO17_FROM_COCO18), :]


def flip_back(heatmaps, pafs):
  """Maps predicted on a horizontally mirrored image -> maps of the original image.

  Args:
    heatmaps: [..., H, W, 19] (numpy or jnp).
    pafs: [..., H, W, 38] in the network channel order.
  Returns:
    (heatmaps [..., H, W, 19], pafs [..., H, W, 38]): mirrored along W, R/L channels swapped,
    PAF x components negated.
  """
  xp = _xp(heatmaps)
  heat = heatmaps[..., ::-1, :][..., np.array(HEATMAP_FLIP)]
  paf = pafs[..., ::-1, :][..., np.array(PAF_FLIP)] * xp.asarray(PAF_FLIP_SIGN, pafs.dtype)
  return heat, paf


def _cell_centres(size: int, stride: float):
  """Input-pixel position of the centres of `size` cells: stride * (g + 0.5) - 0.5, [size]."""
  return stride * (jnp.arange(size, dtype=jnp.float32) + 0.5) - 0.5


def render_confidence_maps(keypoints18, grid_hw: tuple, stride: float, sigma_px: float = 7.0,
                           mode: str = 'max'):
  """Part confidence maps with the background channel (official section 3).

  Args:
    keypoints18: [B, P, 18, 3] float, (x, y, v) in input pixels, 18-part order; joints with
      v > 0 render (centres outside the grid too: their tails inside are drawn, as official).
    grid_hw: (h, w) of the output grid.
    stride: input pixels per cell (8 for the CVPR'17 network).
    sigma_px: Gaussian std in INPUT pixels (official 7).
    mode: 'max' (2019 data layer) or 'sum_clip' (CVPR'17: sum over people, then min(., 1)).
  Returns:
    [B, h, w, 19] float32: channel j < 18 = exp(-d^2 / (2 sigma^2)) at the cell centres, zero
    where d^2 / (2 sigma^2) > 4.6052 (ln 100), combined over people by `mode`; channel 18 =
    max(1 - max_j S_j, 0).
  """
  if mode not in CONFIDENCE_MODES:
    raise ValueError(f'confidence-map mode {mode!r} is not one of {CONFIDENCE_MODES}')
  h, w = grid_hw
  kp = jnp.asarray(keypoints18, jnp.float32)
  x, y, vis = kp[..., 0], kp[..., 1], kp[..., 2]                     # [B, P, 18]
  dx = _cell_centres(w, stride) - x[..., None]                        # [B, P, 18, w]
  dy = _cell_centres(h, stride) - y[..., None]                        # [B, P, 18, h]
  e = (dy[..., :, None] ** 2 + dx[..., None, :] ** 2) / (2.0 * sigma_px ** 2)  # [B,P,18,h,w]
  g = jnp.where((e <= LOG_100) & (vis > 0)[..., None, None], jnp.exp(-e), 0.0)
  if mode == 'max':
    parts = g.max(axis=1)
  else:
    parts = jnp.minimum(g.sum(axis=1), 1.0)
  parts = jnp.moveaxis(parts, 1, -1)                                  # [B, h, w, 18]
  background = jnp.maximum(1.0 - parts.max(axis=-1, keepdims=True), 0.0)
  return jnp.concatenate([parts, background], axis=-1).astype(jnp.float32)


def render_pafs(keypoints18, grid_hw: tuple, stride: float, limb_width_cells: float = 1.0,
                mode: str = 'average'):
  """Part affinity fields of the 19 limbs (official section 3, `putVecMaps`).

  For each person and limb whose two parts are labelled (v > 0) and distinct (A == B draws
  nothing instead of the official NaN), with A, B the parts on the grid and v = (B - A) / |B - A|:
  a cell g is on the limb when its distance to the infinite line through A and B,
  |(g - A) x v|, is <= `limb_width_cells` and it lies in the box [round(min(A, B) - 1),
  round(max(A, B) + 1)) per axis (official fact 6: no along-segment test); there the limb's
  value is v.

  Grid deviation from the CVPR'17 code: the official layer compares cell index g with joint / 8
  (cell g = input pixel 8 g), while its heatmaps put cell g at 3.5 + 8 g (fact 7), a 3.5 px shift
  between the two targets. Here both use hgjax's grid, A = (x + 0.5) / stride - 0.5, so
  confidence maps and PAFs describe the same positions and `decode` inverts one convention.

  Args:
    keypoints18: [B, P, 18, 3] float, (x, y, v) in input pixels, 18-part order.
    grid_hw: (h, w) of the output grid.
    stride: input pixels per cell.
    limb_width_cells: half-width of the limb in cells (official 1).
    mode: 'average' (2019: the mean of the vectors of the people covering a cell) or
      'overwrite' (CVPR'17: the person drawn last, i.e. with the largest P index, wins; fact 5).
  Returns:
    [B, h, w, 38] float32, limb c in channels 2c (x) and 2c + 1 (y) (`LIMBS` order).
  """
  if mode not in PAF_MODES:
    raise ValueError(f'PAF mode {mode!r} is not one of {PAF_MODES}')
  h, w = grid_hw
  g = to_grid(jnp.asarray(keypoints18, jnp.float32), stride)
  a_idx = np.array([a for a, _ in LIMBS])
  b_idx = np.array([b for _, b in LIMBS])
  pa, pb = g[..., a_idx, :], g[..., b_idx, :]                        # [B, P, L, 3]
  d = pb[..., :2] - pa[..., :2]
  norm = jnp.sqrt((d ** 2).sum(-1))                                   # [B, P, L]
  valid = (pa[..., 2] > 0) & (pb[..., 2] > 0) & (norm > 0)
  unit = d / jnp.where(norm > 0, norm, 1.0)[..., None]                # [B, P, L, 2]
  gx = jnp.arange(w, dtype=jnp.float32)
  gy = jnp.arange(h, dtype=jnp.float32)

  def box(lo, hi, grid):
    """Cells in [round(lo - 1), round(hi + 1)) (C round: half away from zero; only >= 0
    values matter after clipping to the grid), [B, P, L, n]."""
    start = jnp.floor(lo - 1.0 + 0.5)
    stop = jnp.floor(hi + 1.0 + 0.5)
    return (grid >= start[..., None]) & (grid < stop[..., None])

  in_x = box(jnp.minimum(pa[..., 0], pb[..., 0]), jnp.maximum(pa[..., 0], pb[..., 0]), gx)
  in_y = box(jnp.minimum(pa[..., 1], pb[..., 1]), jnp.maximum(pa[..., 1], pb[..., 1]), gy)
  rx = gx - pa[..., 0, None]                                          # [B, P, L, w]
  ry = gy - pa[..., 1, None]                                          # [B, P, L, h]
  cross = (ry[..., :, None] * unit[..., 0, None, None]
           - rx[..., None, :] * unit[..., 1, None, None])             # [B, P, L, h, w]
  cover = ((jnp.abs(cross) <= limb_width_cells) & in_y[..., :, None] & in_x[..., None, :]
           & valid[..., None, None])
  if mode == 'overwrite':
    order = jnp.arange(1, cover.shape[1] + 1, dtype=jnp.int32)[:, None, None, None]
    rank = jnp.where(cover, order, 0)                                 # [B, P, L, h, w]
    weight = (cover & (rank == rank.max(axis=1, keepdims=True))).astype(jnp.float32)
  else:
    weight = cover.astype(jnp.float32)
    weight = weight / jnp.maximum(weight.sum(axis=1, keepdims=True), 1.0)
  field = jnp.einsum('bplhw,bplk->bhwlk', weight, unit,
                     precision=jax.lax.Precision.HIGHEST)             # [B, h, w, L, 2]
  return field.reshape(field.shape[:3] + (2 * NUM_LIMBS,)).astype(jnp.float32)
