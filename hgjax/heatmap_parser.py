"""The HigherHRNet heatmap parser (Cheng et al., CVPR 2020), with the official semantics.

A statement of `HeatmapParser.parse` of HRNet/HigherHRNet-Human-Pose-Estimation
(lib/core/group.py; shared/docs/methods/higherhrnet.md section 6), one image, numpy:

1. NMS: a pixel keeps its value where it equals the 5x5 max (`nms_kernel`), else 0 (plateaus
   keep every tied pixel).
2. Top 30 per joint of the NMS'd maps (descending; ties in raster order), with their tags.
3. Matching, joint types in the AE order: candidates above the detection threshold; the first
   type (or any type while nobody exists) starts one person per candidate, keyed by its first
   tag value (equal keys overwrite, as the official dict does); later types are matched to the
   first 30 people by the Hungarian method (munkres, the official library, so ties resolve the
   same way) on round(L2 tag distance) * 100 - heat value, columns padded with 1e10; a match
   with an unrounded distance >= the tag threshold starts a new person.
4. adjust: +-0.25 toward the larger horizontal / vertical neighbour (ties: -0.25), then +0.5.
5. Person score: mean of the K heat values (missing joints 0), before refinement.
6. refine: for each person, each joint: argmax of heat - round(L2 distance to the person's mean
   tag), adjusted as in 4; written only where the joint was missing and the heat is > 0.

Coordinates are the official ones: pixel (col, row) plus 0.5 +- 0.25, i.e. pixel centres at
i + 0.5. `hgjax` grids put centres at integers; `methods.higherhrnet.group` subtracts 0.5.
Written by hand because no library offers this parser; munkres is the official assignment
(pinned below 2: munkres 3.0 breaks cost ties differently, and 4 of the 9 official cases in
tests/data/hhr_parser_cases.npz then group differently, measured).
"""

import dataclasses

import numpy as np
import scipy.ndimage
from munkres import Munkres

from hgjax import skeleton


@dataclasses.dataclass(frozen=True)
class ParserParams:
  """The official `Params` (lib/core/group.py) with the COCO test values of the official
  configs as defaults."""
  detection_threshold: float = 0.1
  tag_threshold: float = 1.0
  max_num_people: int = 30
  nms_kernel: int = 5
  use_detection_val: bool = True
  ignore_too_much: bool = False
  adjust: bool = True
  refine: bool = True
  joint_order: tuple = skeleton.AE_JOINT_ORDER


def nms(heatmaps: np.ndarray, kernel: int) -> np.ndarray:
  """heatmaps [K, H, W] with every pixel that is not its kernel x kernel maximum set to 0."""
  peak = scipy.ndimage.maximum_filter(heatmaps, size=(1, kernel, kernel), mode='constant',
                                      cval=-np.inf)
  return heatmaps * (peak == heatmaps)


def top_k(heatmaps: np.ndarray, tags: np.ndarray, k: int, kernel: int):
  """(tag_k [K, k, L], loc_k [K, k, 2] int (x, y), val_k [K, k]) of the k largest NMS'd values
  of each joint (descending, ties in raster order)."""
  num_joints, h, w = heatmaps.shape
  flat = nms(heatmaps, kernel).reshape(num_joints, h * w)
  ind = np.argsort(-flat, axis=1, kind='stable')[:, :k]
  val = np.take_along_axis(flat, ind, axis=1)
  tag_flat = tags.reshape(num_joints, h * w, -1)
  tag = np.take_along_axis(tag_flat, ind[..., None], axis=1)
  return tag, np.stack([ind % w, ind // w], axis=-1), val


def match_by_tag(tag_k, loc_k, val_k, params: ParserParams) -> np.ndarray:
  """People [P, K, 3 + L] (x, y, val, tag...) in first-seen order (step 3)."""
  num_joints, _, dims = tag_k.shape
  empty = np.zeros((num_joints, 3 + dims))
  people, person_tags = {}, {}
  for i, idx in enumerate(params.joint_order):
    joints = np.concatenate([loc_k[idx], val_k[idx, :, None], tag_k[idx]], axis=1)
    keep = joints[:, 2] > params.detection_threshold
    tags, joints = tag_k[idx][keep], joints[keep]
    if len(joints) == 0:
      continue
    if i == 0 or not people:
      for tag, joint in zip(tags, joints, strict=True):
        people.setdefault(float(tag[0]), np.copy(empty))[idx] = joint
        person_tags[float(tag[0])] = [tag]
      continue
    keys = list(people)[:params.max_num_people]
    if params.ignore_too_much and len(keys) == params.max_num_people:
      continue
    means = np.array([np.mean(person_tags[key], axis=0) for key in keys])
    dist = np.linalg.norm(joints[:, None, 3:] - means[None], ord=2, axis=2)
    cost = np.round(dist) * 100 - joints[:, 2:3] if params.use_detection_val else np.copy(dist)
    added, grouped = cost.shape
    if added > grouped:
      cost = np.concatenate([cost, np.full((added, added - grouped), 1e10)], axis=1)
    for row, col in Munkres().compute(cost.tolist()):
      if row < added and col < grouped and dist[row][col] < params.tag_threshold:
        people[keys[col]][idx] = joints[row]
        person_tags[keys[col]].append(tags[row])
      else:
        key = float(tags[row][0])
        people.setdefault(key, np.copy(empty))[idx] = joints[row]
        person_tags[key] = [tags[row]]
  if not people:
    return np.zeros((0, num_joints, 3 + dims), np.float32)
  return np.array(list(people.values())).astype(np.float32)


def _quarter(heat: np.ndarray, col: int, row: int) -> tuple:
  """(dx, dy): +0.25 toward the larger neighbour along each axis, -0.25 on ties."""
  h, w = heat.shape
  dx = 0.25 if heat[row, min(col + 1, w - 1)] > heat[row, max(col - 1, 0)] else -0.25
  dy = 0.25 if heat[min(row + 1, h - 1), col] > heat[max(row - 1, 0), col] else -0.25
  return dx, dy


def adjust(people: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
  """Step 4, in place on people [P, K, 3 + L]; heatmaps [K, H, W] (not NMS'd)."""
  for person in people:
    for j, joint in enumerate(person):
      if joint[2] > 0:
        x, y = joint[0], joint[1]
        dx, dy = _quarter(heatmaps[j], int(x), int(y))
        person[j, 0:2] = (x + dx + 0.5, y + dy + 0.5)
  return people


def refine(heatmaps: np.ndarray, tags: np.ndarray, person: np.ndarray) -> np.ndarray:
  """Step 6 for one person [K, 3 + L] (in place); heatmaps [K, H, W], tags [K, H, W, L]."""
  found = [tags[j, int(y), int(x)] for j, (x, y) in enumerate(
      person[:, :2].astype(np.int32)) if person[j, 2] > 0]
  mean_tag = np.mean(found, axis=0)
  for j in range(len(person)):
    heat = heatmaps[j]
    distance = np.sqrt(((tags[j] - mean_tag[None, None, :]) ** 2).sum(axis=2))
    row, col = np.unravel_index(np.argmax(heat - np.round(distance)), heat.shape)
    val = heat[row, col]
    dx, dy = _quarter(heat, col, row)
    if val > 0 and person[j, 2] == 0:
      person[j, :3] = (col + 0.5 + dx, row + 0.5 + dy, val)
  return person


def parse(heatmaps, tags, params: ParserParams):
  """The official parser on one image.

  Args:
    heatmaps: [K, H, W] float (flip/scale-merged detection heatmaps).
    tags: [K, H, W] or [K, H, W, L] float (L = 2 with the flip test: the image's and the
      flipped image's tags).
    params: `ParserParams`.
  Returns:
    (people [P, K, 3 + L] float32 (x, y, heat value, tags...) in heatmap pixels with centres at
    i + 0.5, in the official person order; missing joints all zero, scores [P] float32).
  """
  heatmaps = np.asarray(heatmaps, np.float32)
  tags = np.asarray(tags, np.float32)
  if tags.ndim == 3:
    tags = tags[..., None]
  people = match_by_tag(*top_k(heatmaps, tags, params.max_num_people, params.nms_kernel),
                        params)
  if params.adjust:
    people = adjust(people, heatmaps)
  # Per person, as the official `i[:, 2].mean()` (the same float32 summation order).
  scores = np.array([person[:, 2].mean() for person in people], np.float32)
  if params.refine:
    for person in people:
      refine(heatmaps, tags, person)
  return people.astype(np.float32), scores.astype(np.float32)
