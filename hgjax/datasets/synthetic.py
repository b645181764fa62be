"""Procedural synthetic people: the embedded default dataset, no download needed.

`person_example` gives person-centred crops (one figure filling 0.5-0.9 of the image side, like
MPII training crops) with the 16 MPII joints; `scene_example` gives multi-person scenes with the
17 COCO joints for Associative Embedding. Both draw figures from `figures.py` (kinematic skeleton,
left limbs warm hues, right limbs cool hues, a face when turned to the camera) over cluttered
backgrounds, with distractor limbs behind the figures and occluder shapes in front.

Every example is a pure function of (seed, split, index): its generator is
`np.random.default_rng([seed, split_id, index, kind])`, so any example can be regenerated and
the splits are disjoint random streams by construction.

Keypoints are float32 (x, y, v) in image pixels (0-based, pixel centres at integers), taken from
the geometry that draws the image:
  v=2  visible;
  v=1  inside the image but covered (by an occluder shape; in scenes also by another figure);
  v=0  outside the image (its nearest pixel is not in the image); the coordinates are KEPT, not
       zeroed. COCO face points on the far side of the head are v=0 too (not annotatable).
"""

import cmath
import math

import cv2
import numpy as np

from hgjax.datasets import figures

SPLITS = ('train', 'validation', 'test')
_PERSON, _SCENE = 0, 1        # generator stream per example kind
_OCCLUDER = 255               # label value of occluder shapes (figures are 1..P, background 0)
_GRAIN_SIZE = 512
# Fixed film-grain texture (uint8 around 128, sd 32); each example adds a random crop of it at a
# random strength: much cheaper than fresh per-pixel noise, and still unpredictable per pixel.
_GRAIN = np.clip(128 + 32 * np.random.default_rng(0).standard_normal(
    (_GRAIN_SIZE, _GRAIN_SIZE, 3)), 0, 255).astype(np.uint8)


def _draws(seed, split, index, kind):
  if split not in SPLITS:
    raise ValueError(f'unknown split {split!r}; expected one of {SPLITS}')
  if seed < 0 or index < 0:
    raise ValueError(f'seed and index must be non-negative, got {seed}, {index}')
  return figures.Draws(np.random.default_rng([seed, SPLITS.index(split), index, kind]))


def _random_colour(d):
  return figures.hsv(d.uniform(), d.uniform(0.0, 1.0), d.uniform(0.1, 1.0))


def _shape(d, image, label, centre, radius, colour, label_id, filled=True):
  """Draws a random ellipse, convex polygon or rectangle of size ~radius px around centre
  (complex x + iy); onto label as label_id too unless label is None."""
  kind, thickness = d.integers(0, 3), -1 if filled else d.integers(1, 4)
  targets = [(image, colour, cv2.LINE_AA)]
  if label is not None:
    targets.append((label, label_id, cv2.LINE_8))
  if kind == 0:
    c = figures.fix(centre)
    axes = figures.fix(radius * complex(d.uniform(0.3, 1.0), d.uniform(0.3, 1.0)))
    angle = d.uniform(0, 180)
    for target, value, line in targets:
      cv2.ellipse(target, c, axes, angle, 0, 360, value, thickness, line, figures.SHIFT)
    return
  if kind == 1:   # convex polygon: 3-6 corners on an ellipse (triangles, quads, ...)
    rx, ry = radius * d.uniform(0.4, 1.0), radius * d.uniform(0.4, 1.0)
    angles = sorted(d.uniform(0, 2 * math.pi) for _ in range(d.integers(3, 7)))
    corners = [centre + complex(rx * math.cos(t), ry * math.sin(t)) for t in angles]
  else:           # rotated rectangle (a bar when thin)
    turn = cmath.exp(1j * d.uniform(0, math.pi))
    w, h = radius * d.uniform(0.15, 1.0) * turn, radius * d.uniform(0.15, 1.0) * 1j * turn
    corners = [centre + w + h, centre + w - h, centre - w - h, centre - w + h]
  pts = np.array([figures.fix(z) for z in corners], np.int32)
  for target, value, line in targets:
    if filled:
      cv2.fillConvexPoly(target, pts, value, line, figures.SHIFT)
    else:
      cv2.polylines(target, [pts], True, value, thickness, line, figures.SHIFT)


def _background(d, size, height):
  """Cluttered background and distractor limbs. Returns image uint8 [S, S, 3] and label uint8
  [S, S] (zeros: distractors count as background). height: typical figure height, pixels."""
  # Colour field (gradients, blotches) plus grey texture, composed at low resolution (S/4 to
  # S/16) and upsampled once: smooth or, with nearest-neighbour, blocky.
  k, n = d.integers(2, 5), max(2, size // (4, 8, 16)[d.integers(0, 3)])
  field = d.rng.uniform(0, 255, (k, k, 3)).astype(np.float32)
  low = cv2.resize(field, (n, n), interpolation=cv2.INTER_LINEAR)
  low += d.rng.normal(0, d.uniform(3, 25), (n, n, 1)).astype(np.float32)
  interpolation = cv2.INTER_NEAREST if d.uniform() < 0.3 else cv2.INTER_LINEAR
  image = cv2.resize(np.clip(low, 0, 255).astype(np.uint8), (size, size),
                     interpolation=interpolation)
  for _ in range(d.integers(2, 10)):
    _shape(d, image, None, complex(d.uniform(0, size), d.uniform(0, size)),
           d.uniform(0.03, 0.3) * size, _random_colour(d), 0, filled=d.uniform() < 0.7)
  # Distractor limbs: one or two shaded segments, often in the figures' side colours.
  strokes = []
  for _ in range(d.integers(0, 4)):
    z = complex(d.uniform(0, size), d.uniform(0, size))
    width = max(1, round(d.uniform(0.04, 0.09) * height))
    angle = d.uniform(0, 2 * math.pi)
    for _ in range(d.integers(1, 3)):
      hues = figures.LEFT_HUES if d.uniform() < 0.5 else figures.RIGHT_HUES
      colour = figures.side_colour(d, hues) if d.uniform() < 0.6 else _random_colour(d)
      end = z + d.uniform(0.12, 0.25) * height * cmath.exp(1j * angle)
      strokes.append(('capsule', z, end, width, colour))
      z, angle = end, angle + d.uniform(-2.0, 2.0)
  label = np.zeros((size, size), np.uint8)
  figures.draw_strokes(image, label, strokes, 0)
  return image, label


def _occlude(d, image, label, figure_list, heights):
  """With probability 1/2 draws 1-2 occluder shapes over random joints of the figures."""
  if d.uniform() < 0.5:
    return
  for _ in range(d.integers(1, 3)):
    f = d.integers(0, len(figure_list))
    x, y = figure_list[f].joints[d.integers(0, 16)]
    h = heights[f]
    _shape(d, image, label, complex(x + d.normal(0, 0.08 * h), y + d.normal(0, 0.08 * h)),
           d.uniform(0.06, 0.18) * h, _random_colour(d), _OCCLUDER)


def _finish(d, image):
  """Film grain of random strength, sometimes a slight blur."""
  size = image.shape[0]
  if size <= _GRAIN_SIZE:
    oy, ox = d.integers(0, _GRAIN_SIZE - size + 1), d.integers(0, _GRAIN_SIZE - size + 1)
    grain = _GRAIN[oy:oy + size, ox:ox + size]
  else:
    grain = cv2.resize(_GRAIN, (size, size), interpolation=cv2.INTER_NEAREST)
  strength = d.uniform(0.0, 0.3)   # grain sd up to ~10 grey levels
  image = cv2.addWeighted(image, 1.0, grain, strength, -128.0 * strength)
  if d.uniform() < 0.25:
    image = cv2.GaussianBlur(image, (3, 3), 0)
  return image


def _visibility(joints, label, label_id):
  """v [K] float32 for joints [K, 2] against the label map: 0 outside, 1 covered, 2 visible."""
  h, w = label.shape
  xi, yi = np.round(joints[:, 0]).astype(np.int64), np.round(joints[:, 1]).astype(np.int64)
  inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
  own = label[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)] == label_id
  return np.where(inside, np.where(own, 2.0, 1.0), 0.0).astype(np.float32)


def _render_person(seed, split, index, image_size):
  """person_example plus the label map uint8 [S, S] (1 = figure, 255 = occluder, 0 = rest)."""
  d = _draws(seed, split, index, _PERSON)
  height = d.uniform(0.5, 0.9) * image_size
  center = (image_size / 2 + d.normal(0, 0.05 * image_size),
            image_size / 2 + d.normal(0, 0.05 * image_size))
  image, label = _background(d, image_size, height)
  figure = figures.sample_figure(d, height, center)
  figures.draw_strokes(image, label, figure.strokes, 1)
  _occlude(d, image, label, [figure], [height])
  image = _finish(d, image)
  joints = figure.joints[:16]
  keypoints = np.concatenate([joints, _visibility(joints, label, 1)[:, None]], 1)
  example = dict(image=image, keypoints=keypoints.astype(np.float32),
                 head_box=figures.head_box(joints).astype(np.float32),
                 center=np.asarray(center, np.float32), scale=np.float32(height / 200.0))
  return example, label


def person_example(seed: int, split: str, index: int, image_size: int) -> dict:
  """One single-person example, a pure function of its arguments.

  Returns image: uint8 [S, S, 3] RGB; keypoints: float32 [16, 3] MPII joints (x, y, v) in image
  pixels (v as in the module docstring); head_box: float32 [2, 2] [[x1, y1], [x2, y2]] from the
  head segment (0.6 x its diagonal = 0.75 x the segment length, as in MPII); center: float32 [2],
  centre of the figure's joint bounding box; scale: float32, standing height / 200 (MPII sense,
  without the hourglass adjustment).
  """
  return _render_person(seed, split, index, image_size)[0]


# Standing height range of scene figures, fractions of the side (experiments/defaults.py too).
SCENE_HEIGHTS = (0.25, 0.8)


def _render_scene(seed, split, index, image_size, max_people, heights=SCENE_HEIGHTS):
  """scene_example plus the label map uint8 [S, S] (figure p is p + 1, 255 = occluder)."""
  if not 1 <= max_people < _OCCLUDER:
    raise ValueError(f'max_people must be in [1, {_OCCLUDER - 1}], got {max_people}')
  lo, hi = (float(x) for x in heights)
  if not 0.0 < lo <= hi <= 1.5:
    raise ValueError(f'scene figure heights must satisfy 0 < min <= max <= 1.5 (fractions of '
                     f'the image side), got {heights}')
  d = _draws(seed, split, index, _SCENE)
  count = d.integers(1, max_people + 1)
  heights = d.rng.uniform(lo, hi, count) * image_size
  centres = d.rng.uniform(0.15, 0.85, (count, 2)) * image_size
  image, label = _background(d, image_size, float(heights.mean()))
  people = [figures.sample_figure(d, h, c) for h, c in zip(heights, centres, strict=True)]
  # Figures whose feet are lower in the image stand nearer the camera: drawn later.
  order = np.argsort([f.joints[[0, 5], 1].max() for f in people], kind='stable')
  people, heights = [people[i] for i in order], heights[order]
  for i, figure in enumerate(people):
    figures.draw_strokes(image, label, figure.strokes, i + 1)
  _occlude(d, image, label, people, heights)
  image = _finish(d, image)
  keypoints, boxes, areas = [], [], []
  for i, figure in enumerate(people):
    mask = (label == i + 1).view(np.uint8)
    area = cv2.countNonZero(mask)
    if area == 0:   # hidden entirely behind nearer figures or occluders: not a person here
      continue
    joints = figure.joints[figures.COCO_FROM_FIGURE]
    v = _visibility(joints, label, i + 1)
    v[figure.hidden[figures.COCO_FROM_FIGURE]] = 0.0
    keypoints.append(np.concatenate([joints, v[:, None]], 1))
    x, y, w, h = cv2.boundingRect(mask)
    boxes.append((x - 0.5, y - 0.5, w, h))   # pixel edges: pixel centres sit at integers
    areas.append(area)
  example = dict(image=image, keypoints=np.array(keypoints, np.float32).reshape(-1, 17, 3),
                 bbox=np.array(boxes, np.float32).reshape(-1, 4),
                 area=np.array(areas, np.float32))
  return example, label


def scene_example(seed: int, split: str, index: int, image_size: int, max_people: int,
                  heights: tuple = SCENE_HEIGHTS) -> dict:
  """A multi-person scene: 1..max_people overlapping figures, each of standing height uniform in
  heights = (min, max) x image side (the pipelines pass `dataset.scene_height_min/max`).

  Returns image: uint8 [S, S, 3] RGB; keypoints: float32 [P, 17, 3] COCO joints (x, y, v), v as
  in the module docstring (v=1 also for joints covered by nearer figures); bbox: float32 [P, 4]
  (x, y, w, h) of each figure's visible pixels, edges at half-integers; area: float32 [P], its
  visible pixel count. A figure hidden completely behind nearer ones is left out (rare); P >= 1,
  as the nearest figure is drawn last and occluders are too small to cover it.
  """
  return _render_scene(seed, split, index, image_size, max_people, heights)[0]
