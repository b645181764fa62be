"""The OpenPose part-affinity-field parser (Cao et al., CVPR 2017), host side (numpy / scipy).

Spec: shared/docs/methods/openpose.md section 6. Two styles:

'python' = the python demo's parser (Hzzone/pytorch-openpose `src/body.py`, the ZheC notebook's
logic and constants), statement by statement:
1. Peaks, parts 0..17: S' = scipy.ndimage.gaussian_filter(S, sigma=3) (scipy defaults: mode
   'reflect', truncate 4); a peak is a pixel with S' >= its 4 neighbours (zero outside the map)
   and S' > thre1 = 0.1; its score is the UNSMOOTHED S there. Candidates part-major, row-major
   within a part, ids sequential.
2. Limb score, limbs in `PARSER_LIMBS` (limbSeq) order, every pair (A, B) of its two parts:
   d = B - A, norm = max(0.001, |d|), 10 points linspace(A, B) rounded to pixels, samples
   s_i = PAF(p_i) . d / norm; score = mean(s) + min(0.5 H / norm - 1, 0) (H = image height);
   accepted if more than 0.8 * 10 samples are > thre2 = 0.05 and score > 0. Vectorised here over
   all pairs of a limb at once (sums taken in the official left-to-right order).
3. Greedy per limb: accepted pairs by descending score (stable), a pair taken when neither end is
   used in this limb, stop after min(nA, nB) pairs.
4. Assembly in limbSeq order on rows of 20 (18 candidate ids or -1, total score, part count):
   rows holding A or B; one row: set B if it differs (count + 1, score += S(B) + conn); two rows:
   merge when disjoint (score = sum + conn), else as one row on the first; none and k < 17: new
   row {A, B} with count 2, score S(A) + S(B) + conn.
5. Prune rows with count < 4 or score / count < 0.4.

The official code's two known faults (spec fact 19) behave here as follows:
- "partA never set when only partB matched": with one matching row that already holds B, the
  official code does nothing. Here (`set_part_a=True`, the default) A is written into that row
  when the row's A slot is empty, with count + 1 and score += S(A) + conn (the mirror image of the
  B rule; a row whose A slot holds another candidate is left alone, as the official code leaves
  it). `set_part_a=False` reproduces the official result bit for bit.
- "a third matching row raises IndexError": here the first two matching rows (in row order) are
  used, as the official code intends (`subset_idx = [-1, -1]`), and treated as the two-row case.
  With the COCO limbSeq order this cannot happen from maps: a candidate is in at most one row
  before its limbs are processed; the only duplicates the official rules create are the ear B of
  the redundant limbs 17/18 (two-row case, not disjoint), and no later limb visits that ear
  again, so at most two rows ever match. `assemble` is tested with hand-made connections of
  another limb list to show the behaviour.

'matlab' = the constants and rules of the Matlab code used for the paper's COCO numbers
(ZheC testing/src/connect56LineVec.m; spec section 6b):
- peaks: no smoothing; values < thre1 = 0.1 set to 0, then strict > of the 4 neighbours (zero
  outside); then, in candidate order, every later peak of the same part within 6 px (Euclidean,
  <= 6) of a surviving earlier one is removed; score = the map value.
- limb score = mean of the samples > thre2 = 0.05 (not of all 10) + min(0.5 H / norm - 1, 0); a
  pair with A == B is rejected (the Matlab division gives NaN); accepted if more than 80 % of the
  samples are > thre2 and score > 0. Greedy as python.
- a limb whose A part has no candidate in the image makes every B candidate that is in no row at
  slot B a one-part row (count 1, score S(B)), and vice versa; limbs 17 and 18 (shoulder-ear)
  only fill an empty slot of a row holding the other end (no count or score change); the other
  limbs set B in EVERY row holding A (count + 1, score += S(B), += conn), or start a row {A, B}
  when no row holds A (no test on B); no merge step; prune count < 3 or score / count < 0.2.
- Where connect56LineVec is not specific: the released file reads candidates with `find` (column
  order of the Matlab array) and samples `score_mid(y, x)`, which do not agree on one array layout
  (the maps are passed as H x W by applyModel but indexed as Caffe's W x H); hgjax uses the
  geometric reading (samples at the true (x, y), PAF x times dx plus PAF y times dy, python's
  row-major candidate order) and H = the image (map) height like the python demo.

Coordinates: candidate (x, y) are pixel indices of the maps (column, row), which are at image
resolution: pixel centres at integers, hgjax's convention.
"""

import dataclasses

import numpy as np
import scipy.ndimage

from hgjax.paf_targets import NUM_PARTS
from hgjax.paf_targets import PARSER_LIMBS

NUM_HEATMAPS = NUM_PARTS + 1
NUM_PAFS = 2 * len(PARSER_LIMBS)
ROW = NUM_PARTS + 2            # subset row: 18 ids, total score, part count
SCORE, COUNT = NUM_PARTS, NUM_PARTS + 1


@dataclasses.dataclass(frozen=True)
class StyleParams:
  """Constants of one parser style."""
  thre1: float                 # peak threshold
  thre2: float                 # PAF sample threshold
  smooth_sigma: float          # Gaussian smoothing of heatmaps before peak finding (0 = none)
  suppress_px: float           # later peaks within this distance removed (0 = none)
  min_parts: int               # rows with fewer parts are pruned
  min_mean: float              # rows with score / count below this are pruned
  mid_num: int = 10            # samples along a limb
  above_fraction: float = 0.8  # more than this fraction of samples must be > thre2


STYLES = {
    'python': StyleParams(thre1=0.1, thre2=0.05, smooth_sigma=3.0, suppress_px=0.0,
                          min_parts=4, min_mean=0.4),
    'matlab': StyleParams(thre1=0.1, thre2=0.05, smooth_sigma=0.0, suppress_px=6.0,
                          min_parts=3, min_mean=0.2),
}


def _params(style: str) -> StyleParams:
  if style not in STYLES:
    raise ValueError(f'parser style {style!r} is not one of {tuple(STYLES)}')
  return STYLES[style]


def find_peaks(heatmaps, style: str = 'python') -> np.ndarray:
  """Part candidates of the 18 parts.

  Args:
    heatmaps: [H, W, >= 18] float (image resolution; channel 18, the background, is unused).
    style: 'python' or 'matlab'.
  Returns:
    candidates [N, 4] float64 (x, y, score, part), part-major, row-major within a part; a
    candidate's id is its row index.
  """
  p = _params(style)
  maps = np.ascontiguousarray(np.moveaxis(np.asarray(heatmaps)[..., :NUM_PARTS], -1, 0),
                              dtype=np.float64)                     # [18, H, W]
  if style == 'python':
    work = scipy.ndimage.gaussian_filter(maps, sigma=(0, p.smooth_sigma, p.smooth_sigma))
    part, y, x = np.nonzero(work > p.thre1)
  else:                            # no smoothing; values < thre1 count as 0
    work = maps
    part, y, x = np.nonzero(maps >= p.thre1)
  value = work[part, y, x]
  # 4-neighbour test on the pixels above the threshold only (zero outside the map).
  h, w = maps.shape[1:]
  peak = np.ones(len(value), bool)
  for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
    yy, xx = y + dy, x + dx
    inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    other = np.where(inside, work[part, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)], 0.0)
    if style == 'python':
      peak &= value >= other
    else:
      peak &= value > np.where(other < p.thre1, 0.0, other)
  part, y, x = part[peak], y[peak], x[peak]
  cands = np.stack([x, y, maps[part, y, x], part], axis=1).astype(np.float64).reshape(-1, 4)
  if p.suppress_px > 0:
    cands = cands[_suppress(cands, p.suppress_px)]
  return cands


def _suppress(cands: np.ndarray, radius: float) -> np.ndarray:
  """Keep-mask [N]: per part, in order, later candidates within `radius` of a kept earlier one
  are dropped (Matlab findPeaks). cands [N, 4] (x, y, score, part)."""
  keep = np.ones(len(cands), bool)
  for part in np.unique(cands[:, 3]):
    idx = np.nonzero(cands[:, 3] == part)[0]
    xy = cands[idx, :2]
    near = ((xy[:, None] - xy[None]) ** 2).sum(-1) <= radius ** 2   # [n, n]
    flag = np.ones(len(idx), bool)
    for i in range(len(idx)):
      if flag[i]:
        flag[i + 1:] &= ~near[i, i + 1:]
    keep[idx] = flag
  return keep


def limb_scores(cand_a, cand_b, paf_x, paf_y, image_height: float, style: str = 'python'):
  """Scores of every candidate pair of one limb, vectorised.

  Args:
    cand_a: [nA, >= 2] (x, y, ...) integer pixel positions of part a's candidates.
    cand_b: [nB, >= 2] likewise for part b.
    paf_x, paf_y: [H, W] the limb's PAF channels.
    image_height: H of the distance prior min(0.5 H / norm - 1, 0).
    style: 'python' (mean of all samples) or 'matlab' (mean of the samples above thre2).
  Returns:
    (score [nA, nB] float64 with the distance prior, accepted [nA, nB] bool).
  """
  p = _params(style)
  cand_a = np.asarray(cand_a, np.float64).reshape(-1, np.shape(cand_a)[-1])
  cand_b = np.asarray(cand_b, np.float64).reshape(-1, np.shape(cand_b)[-1])
  ax, ay = cand_a[:, 0, None], cand_a[:, 1, None]                    # [nA, 1]
  dx, dy = cand_b[None, :, 0] - ax, cand_b[None, :, 1] - ay          # [nA, nB]
  norm = np.sqrt(dx * dx + dy * dy)
  if style == 'python':
    norm = np.maximum(norm, 0.001)
  safe = np.where(norm > 0, norm, 1.0)
  ux, uy = dx / safe, dy / safe
  t = np.arange(p.mid_num) / (p.mid_num - 1)
  px = np.rint(ax[..., None] + dx[..., None] * t).astype(np.int64)   # [nA, nB, mid]
  py = np.rint(ay[..., None] + dy[..., None] * t).astype(np.int64)
  vx = np.asarray(paf_x)[py, px].astype(np.float64)
  vy = np.asarray(paf_y)[py, px].astype(np.float64)
  samples = vx * ux[..., None] + vy * uy[..., None]
  above = samples > p.thre2
  prior = np.minimum(0.5 * image_height / safe - 1, 0)
  if style == 'python':
    total = samples[..., 0].copy()          # left-to-right, as the official `sum(list)`
    for i in range(1, p.mid_num):
      total += samples[..., i]
    score = total / p.mid_num + prior
  else:
    total = np.zeros(dx.shape)
    for i in range(p.mid_num):
      total += np.where(above[..., i], samples[..., i], 0.0)
    count = above.sum(-1)
    with np.errstate(invalid='ignore', divide='ignore'):
      score = total / count + prior
  accepted = (above.sum(-1) > p.above_fraction * p.mid_num) & (score > 0) & (norm > 0)
  return score, accepted


def match_limb(score, accepted) -> np.ndarray:
  """Greedy matching of one limb.

  Args:
    score: [nA, nB] pair scores; accepted: [nA, nB] bool.
  Returns:
    [M, 3] float64 (i, j, score) in the order taken: accepted pairs by descending score (stable,
    ties in (i, j) row-major order), each i and j at most once, at most min(nA, nB) pairs.
  """
  n_a, n_b = np.shape(score)
  ii, jj = np.nonzero(accepted)
  s = np.asarray(score)[ii, jj]
  taken, used_a, used_b = [], set(), set()
  for o in np.argsort(-s, kind='stable'):
    if len(taken) >= min(n_a, n_b):
      break
    if ii[o] not in used_a and jj[o] not in used_b:
      used_a.add(ii[o])
      used_b.add(jj[o])
      taken.append((ii[o], jj[o], s[o]))
  return np.array(taken, np.float64).reshape(-1, 3)


def connect(candidates, pafs, image_height: float, style: str = 'python', limbs=PARSER_LIMBS):
  """Connections of every limb.

  Args:
    candidates: [N, 4] (x, y, score, part) from `find_peaks`.
    pafs: [H, W, 38] (network channel order; `limbs` name the channels).
    image_height: H of the distance prior.
    style: 'python' or 'matlab'.
    limbs: (part a, part b, channel x, channel y) per limb, in parsing order.
  Returns:
    list over limbs of [M, 3] float64 (id A, id B, score), ids = candidate rows.
  """
  out = []
  for a, b, cx, cy in limbs:
    ids_a = np.nonzero(candidates[:, 3] == a)[0]
    ids_b = np.nonzero(candidates[:, 3] == b)[0]
    if len(ids_a) == 0 or len(ids_b) == 0:
      out.append(np.zeros((0, 3)))
      continue
    score, ok = limb_scores(candidates[ids_a], candidates[ids_b], pafs[..., cx], pafs[..., cy],
                            image_height, style)
    m = match_limb(score, ok)
    out.append(np.stack([ids_a[m[:, 0].astype(int)], ids_b[m[:, 1].astype(int)], m[:, 2]],
                        axis=1).astype(np.float64).reshape(-1, 3))
  return out


def _new_row(ids_scores: dict) -> np.ndarray:
  row = -np.ones(ROW)
  for part, cand_id in ids_scores.items():
    row[part] = cand_id
  return row


def assemble(connections, candidates, style: str = 'python', limbs=PARSER_LIMBS,
             set_part_a: bool = True) -> np.ndarray:
  """Connections -> people (the official `subset`, before pruning).

  Args:
    connections: list over limbs of [M, 3] (id A, id B, connection score).
    candidates: [N, 4] (x, y, score, part).
    style: 'python' (with merging) or 'matlab' (no merging, one-part rows, slot filling for the
      shoulder-ear limbs 17 and 18).
    limbs: (part a, part b, ...) per limb, parsing order (parts < 18).
    set_part_a: python style: write A into the one matching row that holds B but no A (the
      official code does not; False reproduces it).
  Returns:
    subset [R, 20] float64: 18 candidate ids (-1 = missing), total score, part count.
  """
  _params(style)
  part_score = np.asarray(candidates, np.float64)[:, 2]
  part_of = np.asarray(candidates)[:, 3]
  subset = np.zeros((0, ROW))
  for k, limb in enumerate(limbs):
    a, b = int(limb[0]), int(limb[1])
    conns = np.asarray(connections[k], np.float64).reshape(-1, 3)
    if style == 'python':
      subset = _assemble_python_limb(subset, k, a, b, conns, part_score, set_part_a)
    else:
      subset = _assemble_matlab_limb(subset, k, a, b, conns, part_score, part_of)
  return subset


def _assemble_python_limb(subset, k, a, b, conns, part_score, set_part_a):
  """One limb of the python assembly (body.py:158-198); returns the new subset [R, 20]."""
  for id_a, id_b, conn in conns:
    match = np.nonzero((subset[:, a] == id_a) | (subset[:, b] == id_b))[0]
    if len(match) == 1:
      j = match[0]
      if subset[j, b] != id_b:
        subset[j, b] = id_b
        subset[j, COUNT] += 1
        subset[j, SCORE] += part_score[int(id_b)] + conn
      elif set_part_a and subset[j, a] < 0:
        subset[j, a] = id_a
        subset[j, COUNT] += 1
        subset[j, SCORE] += part_score[int(id_a)] + conn
    elif len(match) >= 2:          # the official code raises IndexError for 3 or more
      j1, j2 = match[:2]
      shared = (subset[j1, :NUM_PARTS] >= 0) & (subset[j2, :NUM_PARTS] >= 0)
      if not shared.any():
        subset[j1, :NUM_PARTS] += subset[j2, :NUM_PARTS] + 1
        subset[j1, NUM_PARTS:] += subset[j2, NUM_PARTS:]
        subset[j1, SCORE] += conn
        subset = np.delete(subset, j2, 0)
      else:
        subset[j1, b] = id_b
        subset[j1, COUNT] += 1
        subset[j1, SCORE] += part_score[int(id_b)] + conn
    elif k < 17:
      row = _new_row({a: id_a, b: id_b})
      row[COUNT] = 2
      row[SCORE] = part_score[int(id_a)] + part_score[int(id_b)] + conn
      subset = np.vstack([subset, row])
  return subset


def _assemble_matlab_limb(subset, k, a, b, conns, part_score, part_of):
  """One limb of the Matlab assembly (connect56LineVec.m:47-86, 188-245)."""
  n_a, n_b = int((part_of == a).sum()), int((part_of == b).sum())
  if n_a == 0 and n_b == 0:
    return subset
  if n_a == 0 or n_b == 0:         # one-part rows for the side that has candidates
    part = b if n_a == 0 else a
    for cand_id in np.nonzero(part_of == part)[0]:
      if not (subset[:, part] == cand_id).any():
        row = _new_row({part: cand_id})
        row[COUNT] = 1
        row[SCORE] = part_score[cand_id]
        subset = np.vstack([subset, row])
    return subset
  if k in (17, 18):                # redundant shoulder-ear limbs: fill empty slots only
    for id_a, id_b, _ in conns:
      for j in range(len(subset)):
        if subset[j, a] == id_a and subset[j, b] < 0:
          subset[j, b] = id_b
        elif subset[j, b] == id_b and subset[j, a] < 0:
          subset[j, a] = id_a
    return subset
  for id_a, id_b, conn in conns:
    rows = np.nonzero(subset[:, a] == id_a)[0]
    for j in rows:
      subset[j, b] = id_b
      subset[j, COUNT] += 1
      subset[j, SCORE] = subset[j, SCORE] + part_score[int(id_b)] + conn
    if len(rows) == 0:
      row = _new_row({a: id_a, b: id_b})
      row[COUNT] = 2
      row[SCORE] = part_score[int(id_a)] + part_score[int(id_b)] + conn
      subset = np.vstack([subset, row])
  return subset


def prune(subset, style: str = 'python') -> np.ndarray:
  """Rows [R, 20] without those with count < min_parts or score / count < min_mean."""
  p = _params(style)
  bad = (subset[:, COUNT] < p.min_parts) | (subset[:, SCORE] / subset[:, COUNT] < p.min_mean)
  return subset[~bad]


def subset_to_people(candidates, subset):
  """(people [P, 18, 3] float64 (x, y, peak score; missing 0, 0, 0), scores [P] = total score)
  from candidates [N, 4] and subset [P, 20], in subset order."""
  ids = subset[:, :NUM_PARTS].astype(np.int64)
  people = np.where((ids >= 0)[..., None], np.asarray(candidates, np.float64)[ids, :3], 0.0)
  return people.reshape(-1, NUM_PARTS, 3), subset[:, SCORE].astype(np.float64)


def parse(heatmaps, pafs, style: str = 'python', image_height: float | None = None,
          set_part_a: bool = True):
  """OpenPose parsing of one image.

  Args:
    heatmaps: [H, W, 19] float, confidence maps at image resolution (18 parts + background).
    pafs: [H, W, 38] float, PAFs at image resolution in the network channel order
      (`paf_targets.LIMBS`: limb c in channels 2c (x), 2c + 1 (y)).
    style: 'python' (the python demo, default) or 'matlab' (the paper's Matlab constants).
    image_height: H of the distance prior; None = the map height.
    set_part_a: see the module docstring (False = the official python result bit for bit).
  Returns:
    (people [P, 18, 3] float64 (x, y, peak score) in map pixels, missing parts (0, 0, 0);
    scores [P] float64 = the parser's total score (part scores + connection scores)). No people:
    shapes [0, 18, 3] and [0].
  """
  _params(style)
  heatmaps = np.asarray(heatmaps)
  pafs = np.asarray(pafs)
  if heatmaps.ndim != 3 or heatmaps.shape[-1] != NUM_HEATMAPS:
    raise ValueError(f'OpenPose heatmaps must be [H, W, {NUM_HEATMAPS}], got shape '
                     f'{heatmaps.shape}')
  if pafs.ndim != 3 or pafs.shape[-1] != NUM_PAFS or pafs.shape[:2] != heatmaps.shape[:2]:
    raise ValueError(f'OpenPose PAFs must be [H, W, {NUM_PAFS}] with the heatmaps\' H, W '
                     f'{heatmaps.shape[:2]}, got shape {pafs.shape}')
  height = heatmaps.shape[0] if image_height is None else image_height
  candidates = find_peaks(heatmaps, style)
  connections = connect(candidates, pafs, height, style)
  subset = prune(assemble(connections, candidates, style, set_part_a=set_part_a), style)
  return subset_to_people(candidates, subset)
