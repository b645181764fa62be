"""Associative Embedding grouping on the host: detections + tags -> people.

The procedure of Newell et al. (NeurIPS 2017) as released in pose-ae-train:
  1. candidates: non-maximum suppression by 3x3 max-pool equality (one peak per plateau, see
     `is_peak`), the `top_k` strongest peaks per joint, kept if their heat value exceeds
     `detection_threshold`;
  2. joint by joint in `joint_order` (head, shoulders, hips, then limbs outwards), candidates
     are matched to the people found so far by the Hungarian algorithm
     (`scipy.optimize.linear_sum_assignment`) on cost round(tag distance) * 100 - heat value,
     where the tag distance is to the person's reference tag (mean of its joints' tags so far);
     a match is accepted when the tag distance is below `tag_threshold`; every other candidate
     starts a new person;
  3. the `max_people` people with the best mean score of their matched joints are kept (the
     reference code refines every fragment, at a cost of people x joints x pixels);
  4. refine: each missing joint of a person is taken at the argmax over pixels of
     heat - round(tag distance to the person's reference tag), if its heat is positive; with
     `refine_scores` (the reference code) the filled joints' heat values count in the person
     score, without it only the positions are filled and the person keeps the score of its
     matched joints (filling every fragment's joints raises the scores of wrong people);
  5. sub-pixel refinement of every found joint (`subpixel`): 'quarter' (the reference code: a
     quarter pixel towards the larger neighbour, per axis), 'taylor' (one Newton step on the
     log heatmap, as `hgjax.decode.heatmap_peaks`), 'dark' (that step on the heatmaps smoothed
     by a Gaussian of std `blur_sigma`, DARK's modulation) or 'none'; person score = mean of the K
     joint scores (0 for joints missing, or filled when `refine_scores` is off); people are
     sorted by it.
Tags are multiplied by `tag_scale` first (1 in the reference code). Because the matching cost
rounds the distance, tags that a margin-1 push leaves about 1 apart lose every distance below
0.5 to the rounding; a scale s > 1 measures distances in units of 1/s, in the matching cost,
the threshold test and the refinement alike.
Tag distance between tag vectors is the root mean square over their D dimensions (D = 1: the
absolute difference; with the flip test the tags of the image and of its flip form D = 2).

Coordinates are grid (u, v) = (column, row) in heatmap pixels, pixel centres at integers (the
'continuous' convention of `hgjax.targets`); `hgjax.decode.grid_to_input` maps them to input
pixels.
"""

import dataclasses

import numpy as np
import scipy.optimize

from hgjax import decode
from hgjax import skeleton


@dataclasses.dataclass(frozen=True)
class GroupingParams:
  detection_threshold: float = 0.1
  tag_threshold: float = 1.0
  tag_scale: float = 1.0       # tags are multiplied by it before everything else (see group)
  top_k: int = 30
  max_people: int = 20
  refine: bool = True
  refine_scores: bool = True   # filled joints' heat values count in the person score
  subpixel: str = 'quarter'    # none | quarter | taylor | dark (config.eval.refine)
  blur_sigma: float = 1.0      # 'dark' smoothing std in grid pixels (config.eval.blur_sigma)
  joint_order: tuple = skeleton.AE_JOINT_ORDER

  @classmethod
  def from_config(cls, config, num_joints: int) -> 'GroupingParams':
    """`config.grouping` and `config.eval` for maps of `num_joints` joints."""
    g = config.grouping
    order = skeleton.grouping_order(num_joints)
    return cls(detection_threshold=g.detection_threshold, tag_threshold=g.tag_threshold,
               tag_scale=g.tag_scale, top_k=g.top_k, max_people=g.max_people, refine=g.refine,
               refine_scores=g.refine_scores, subpixel=config.eval.refine,
               blur_sigma=config.eval.blur_sigma, joint_order=tuple(order))

  def __post_init__(self):
    if not self.tag_scale > 0:
      raise ValueError(f'config.grouping.tag_scale must be > 0, got {self.tag_scale!r}')
    if self.subpixel not in SUBPIXEL:
      raise ValueError(f'grouping sub-pixel refinement (config.eval.refine) must be one of '
                       f'{SUBPIXEL}, got {self.subpixel!r}')
    if self.subpixel == 'dark' and not self.blur_sigma > 0:
      raise ValueError(f'config.eval.blur_sigma must be > 0 for dark refinement, '
                       f'got {self.blur_sigma!r}')


SUBPIXEL = ('none', 'quarter', 'taylor', 'dark')


# 3x3 neighbours (row, col offsets); the first four come earlier in raster order.
_EARLIER = ((-1, -1), (-1, 0), (-1, 1), (0, -1))
_LATER = ((0, 1), (1, -1), (1, 0), (1, 1))


def is_peak(heatmaps: np.ndarray, rows, cols, joints) -> np.ndarray:
  """Non-maximum suppression at the given pixels of heatmaps [h, w, K]: bool, same shape.

  A pixel is a peak when it equals the maximum of its 3x3 neighbourhood (max-pool equality, as
  in the reference code; outside the map counts as -inf) and is strictly greater than its four
  neighbours that come earlier in raster order, so a plateau of equal maxima gives one peak,
  not one per pixel (ties are rare in network outputs but common in rendered maps, where they
  would spawn duplicate people).
  """
  h, w, _ = heatmaps.shape
  value = heatmaps[rows, cols, joints]
  keep = np.ones(value.shape, bool)
  for offsets, strict in ((_EARLIER, True), (_LATER, False)):
    for dr, dc in offsets:
      r, c = rows + dr, cols + dc
      inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
      other = heatmaps[np.clip(r, 0, h - 1), np.clip(c, 0, w - 1), joints]
      keep &= ~inside | ((value > other) if strict else (value >= other))
  return keep


def peaks(heatmaps: np.ndarray) -> np.ndarray:
  """bool [h, w, K]: `is_peak` at every pixel of heatmaps [h, w, K]."""
  rows, cols, joints = np.indices(heatmaps.shape)
  return is_peak(heatmaps, rows, cols, joints)


def candidates(heatmaps: np.ndarray, tags: np.ndarray, top_k: int, threshold: float):
  """The `top_k` strongest peaks of every joint above `threshold` (step 1).

  Args:
    heatmaps: [h, w, K] float.
    tags: [h, w, K, D] float.
    top_k: peaks kept per joint.
    threshold: detection threshold on the heat value (strictly greater is kept).
  Returns:
    per joint k (lists of length K): loc[k] [n_k, 2] int (col, row), val[k] [n_k] in
    decreasing order, tag[k] [n_k, D]; n_k <= top_k.
  """
  k = heatmaps.shape[-1]
  # Thresholding first leaves few pixels to test for being peaks.
  rr, cc, jj = np.nonzero(heatmaps > threshold)
  keep = is_peak(heatmaps, rr, cc, jj)
  rr, cc, jj = rr[keep], cc[keep], jj[keep]
  val = heatmaps[rr, cc, jj]
  order = np.lexsort((-val, jj))                                     # by joint, then value
  jj, rr, cc, val = jj[order], rr[order], cc[order], val[order]
  starts = np.searchsorted(jj, np.arange(k + 1))
  tag = tags[rr, cc, jj]                                             # [n, D]
  loc = np.stack([cc, rr], axis=-1)
  out_loc, out_val, out_tag = [], [], []
  for j in range(k):
    a, b = starts[j], min(starts[j + 1], starts[j] + top_k)
    out_loc.append(loc[a:b])
    out_val.append(val[a:b])
    out_tag.append(tag[a:b])
  return out_loc, out_val, out_tag


def match_by_tag(loc, val, tag, params: GroupingParams):
  """Joint-by-joint Hungarian matching (step 2 of the module docstring).

  Args:
    loc, val, tag: per-joint candidates from `candidates` (all above the threshold).
  Returns:
    keypoints [N, K, 3] float64 (col, row, heat value; all 0 for a missing joint) and
    reference tags [N, D] (mean tag of each person's joints).
  """
  k = len(val)
  d = tag[0].shape[-1]
  cap = sum(len(v) for v in val)
  people = np.zeros((cap, k, 3))
  tag_sum = np.zeros((cap, d))
  count = np.zeros(cap)
  num = 0
  for j in params.joint_order:
    jl, jv, jt = loc[j], val[j], tag[j]
    if not len(jv):
      continue
    new = np.ones(len(jv), bool)
    if num:
      ref = tag_sum[:num] / count[:num, None]
      dist = np.sqrt(((jt[:, None] - ref[None]) ** 2).mean(-1))    # [m, num]
      rows, cols = scipy.optimize.linear_sum_assignment(np.round(dist) * 100 - jv[:, None])
      ok = dist[rows, cols] < params.tag_threshold
      rows, cols = rows[ok], cols[ok]
      people[cols, j, :2] = jl[rows]
      people[cols, j, 2] = jv[rows]
      tag_sum[cols] += jt[rows]
      count[cols] += 1
      new[rows] = False
    fresh = np.arange(num, num + new.sum())
    people[fresh, j, :2] = jl[new]
    people[fresh, j, 2] = jv[new]
    tag_sum[fresh], count[fresh] = jt[new], 1
    num += len(fresh)
  return people[:num], tag_sum[:num] / np.maximum(count[:num], 1)[:, None]


def refine_missing(people, ref_tags, heatmaps, tags) -> np.ndarray:
  """Fills missing joints (score 0) of people [N, K, 3] in place; returns people.

  heatmaps [h, w, K], tags [h, w, K, D], ref_tags [N, D]. Step 4 of the module docstring.
  """
  h, w, k = heatmaps.shape
  d = tags.shape[-1]
  missing = people[..., 2] == 0
  joints = np.flatnonzero(missing.any(0))
  if not len(joints):
    return people
  heat = np.ascontiguousarray(np.moveaxis(heatmaps, -1, 0).reshape(k, h * w), np.float32)
  # [K, D, h * w]: each joint's tag dimension contiguous, for the outer differences below.
  tag = np.ascontiguousarray(np.transpose(tags.reshape(h * w, k, d), (1, 2, 0)), np.float32)
  ref = ref_tags.astype(np.float32)
  for j in joints:
    who = np.flatnonzero(missing[:, j])
    score = np.subtract.outer(ref[who, 0], tag[j, 0])               # [n, h * w]
    np.square(score, out=score)
    for dim in range(1, d):
      diff = np.subtract.outer(ref[who, dim], tag[j, dim])
      score += np.square(diff, out=diff)
    if d > 1:
      score *= 1.0 / d
    np.sqrt(score, out=score)                                        # tag distance (RMS)
    np.rint(score, out=score)
    np.subtract(heat[j], score, out=score)
    best = np.argmax(score, axis=1)
    value = heat[j, best]
    found = value > 0
    who, best = who[found], best[found]
    people[who, j, 0] = best % w
    people[who, j, 1] = best // w
    people[who, j, 2] = value[found]
  return people


def quarter_offsets(people, heatmaps) -> np.ndarray:
  """Quarter-pixel shift of every found joint towards its larger neighbour, per axis.

  Same rule as `hgjax.decode.heatmap_peaks(refine='quarter')`: no shift on an axis where the
  joint touches the border or the two neighbours are equal. people [N, K, 3] -> [N, K, 2].
  """
  h, w, _ = heatmaps.shape
  col = people[..., 0].astype(np.int64)
  row = people[..., 1].astype(np.int64)
  j = np.broadcast_to(np.arange(people.shape[1]), col.shape)

  def at(r, c):
    return heatmaps[np.clip(r, 0, h - 1), np.clip(c, 0, w - 1), j]

  dx = np.sign(at(row, col + 1) - at(row, col - 1)) * 0.25
  dy = np.sign(at(row + 1, col) - at(row - 1, col)) * 0.25
  dx = np.where((col > 0) & (col < w - 1), dx, 0.0)
  dy = np.where((row > 0) & (row < h - 1), dy, 0.0)
  found = people[..., 2] > 0
  return np.where(found[..., None], np.stack([dx, dy], -1), 0.0)


def taylor_offsets(people, heatmaps) -> np.ndarray:
  """Newton step on the log heatmap at every found joint: people [N, K, 3] -> [N, K, 2].

  `hgjax.decode.taylor_step` (as `heatmap_peaks(refine='taylor')`) on each joint's 3x3
  neighbourhood; the quarter shift where that is undefined (border, a non-positive value in
  the neighbourhood, a log-Hessian that is not negative definite).
  """
  h, w, _ = heatmaps.shape
  col = people[..., 0].astype(np.int64)
  row = people[..., 1].astype(np.int64)
  j = np.broadcast_to(np.arange(people.shape[1]), col.shape)
  n = np.stack([heatmaps[np.clip(row + dr, 0, h - 1), np.clip(col + dc, 0, w - 1), j]
                for dr in (-1, 0, 1) for dc in (-1, 0, 1)], -1).astype(np.float64)
  step, defined = decode.taylor_step(n, np)
  ok = defined & (col > 0) & (col < w - 1) & (row > 0) & (row < h - 1)
  found = people[..., 2] > 0
  out = np.where(ok[..., None], step, quarter_offsets(people, heatmaps))
  return np.where(found[..., None], out, 0.0)


def group(heatmaps: np.ndarray, tags: np.ndarray, params: GroupingParams):
  """People from one image's heatmaps and tags.

  Args:
    heatmaps: [h, w, K] float (flip/scale-merged detection heatmaps).
    tags: [h, w, K, D] float tag maps (D = tag_dim, or more with the flip test).
    params: `GroupingParams`.
  Returns:
    keypoints [N, K, 3] float32 (u, v, score) in grid pixels, N <= params.max_people, in
    decreasing person score; scores [N] float32 (mean of the K joint scores, filled joints
    counted as 0 unless `params.refine_scores`). Joints still missing after refinement have
    (0, 0, 0).
  """
  heatmaps = np.asarray(heatmaps, np.float32)
  tags = np.asarray(tags, np.float32) * np.float32(params.tag_scale)
  if tags.ndim == 3:
    tags = tags[..., None]
  loc, val, tag = candidates(heatmaps, tags, params.top_k, params.detection_threshold)
  people, ref = match_by_tag(loc, val, tag, params)
  # Only the max_people best people (by the mean score of their matched joints) go on: the
  # output keeps that many anyway, and refining every one-joint fragment would cost
  # O(people x joints x pixels).
  scores = people[..., 2].mean(-1)                                   # matched joints only
  first = np.argsort(-scores, kind='stable')[:params.max_people]
  people, ref, scores = people[first], ref[first], scores[first]
  if len(people) and params.refine:
    people = refine_missing(people, ref, heatmaps, tags)
    if params.refine_scores:
      scores = people[..., 2].mean(-1)
  if len(people) and params.subpixel == 'quarter':
    people[..., :2] += quarter_offsets(people, heatmaps)
  elif len(people) and params.subpixel == 'taylor':
    people[..., :2] += taylor_offsets(people, heatmaps)
  elif len(people) and params.subpixel == 'dark':
    people[..., :2] += taylor_offsets(people, decode.gaussian_blur(heatmaps, params.blur_sigma, np))
  best = np.argsort(-scores, kind='stable')[:params.max_people]
  return people[best].astype(np.float32), scores[best].astype(np.float32)
