"""Output in the OpenPose layout: `<stem>_keypoints.json` as `openpose --write_json` writes it,
and the overlay drawn with the OpenPose limb colours (`hgjax.predict --format openpose`).

JSON (OpenPose `fileStream.cpp`, version 1.3; shared/docs/methods/openpose.md section 8):
  {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": [x0, y0, c0, x1, ...],
   "face_keypoints_2d": [], "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [],
   "pose_keypoints_3d": [], "face_keypoints_3d": [], "hand_left_keypoints_3d": [],
   "hand_right_keypoints_3d": []}, ...]}
with 18 parts in the COCO-18 order of `hgjax.paf_targets` (nose, neck, right arm, left arm,
right leg, left leg, eyes and ears right first), original-image pixels, c = the heatmap peak
value, missing parts 0, 0, 0.

hgjax's multi-person methods return COCO-17 people; the neck is written as the mean of the two
shoulders with the smaller of their scores (0, 0, 0 unless both are found), the rule the
official data layer uses to make the neck label. For OpenPose models this replaces the
network's own neck estimate (dropped with the COCO-17 export), a difference of at most the
neck's localisation error.
"""

import json
from pathlib import Path

import cv2
import numpy as np

from hgjax import paf_targets

VERSION = 1.3
EMPTY_ARRAYS = ('face_keypoints_2d', 'hand_left_keypoints_2d', 'hand_right_keypoints_2d',
                'pose_keypoints_3d', 'face_keypoints_3d', 'hand_left_keypoints_3d',
                'hand_right_keypoints_3d')
# Limb colours (RGB) of the OpenPose demos' body drawing, one per limb of the parser's limb
# order (`paf_targets.PARSER_LIMBS`, the first 17: the ear-shoulder limbs are not drawn).
LIMB_COLOURS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0),
                (85, 255, 0), (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255),
                (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255), (170, 0, 255),
                (255, 0, 255), (255, 0, 170), (255, 0, 85))


def to_coco18(people17) -> np.ndarray:
  """COCO-17 people [P, 17, 3] (x, y, score; score <= 0 = missing) -> [P, 18, 3] in the COCO-18
  order, neck = mean of the shoulders (score: the smaller), missing parts (0, 0, 0)."""
  kp = np.asarray(people17, np.float64).reshape(-1, 17, 3)
  out = np.zeros((len(kp), 18, 3))
  for part, src in enumerate(paf_targets.COCO18_FROM_COCO17):
    if src >= 0:
      out[:, part] = kp[:, src]
  shoulders = kp[:, [5, 6]]
  both = (shoulders[..., 2] > 0).all(axis=1)
  out[both, 1, :2] = shoulders[both, :, :2].mean(axis=1)
  out[both, 1, 2] = shoulders[both, :, 2].min(axis=1)
  out[out[..., 2] <= 0] = 0.0
  return out


def to_openpose_dict(people17) -> dict:
  """COCO-17 people [P, 17, 3] in image pixels -> the OpenPose JSON object (see the module
  docstring)."""
  rows = []
  for person in to_coco18(people17):
    row = {'person_id': [-1],
           'pose_keypoints_2d': [round(float(v), 4) for v in person.reshape(-1)]}
    row.update({name: [] for name in EMPTY_ARRAYS})
    rows.append(row)
  return {'version': VERSION, 'people': rows}


def draw_openpose(image: np.ndarray, people17) -> np.ndarray:
  """image RGB uint8 [H, W, 3] with every person's limbs and parts drawn in the OpenPose
  colours (limb i of the parser's order in `LIMB_COLOURS[i]`, part j as a dot of colour j)."""
  out = np.ascontiguousarray(image.copy())
  r = max(2, out.shape[0] // 120)
  for person in to_coco18(people17):
    found = person[:, 2] > 0
    for i, (a, b, _, _) in enumerate(paf_targets.PARSER_LIMBS[:17]):
      if found[a] and found[b]:
        cv2.line(out, tuple(int(round(v)) for v in person[a, :2]),
                 tuple(int(round(v)) for v in person[b, :2]), LIMB_COLOURS[i], r, cv2.LINE_AA)
    for j in np.flatnonzero(found):
      cv2.circle(out, tuple(int(round(v)) for v in person[j, :2]), r + 1, LIMB_COLOURS[j], -1,
                 cv2.LINE_AA)
  return out


def write_openpose(out_dir: Path, stem: str, image, people17) -> tuple:
  """Writes out_dir/<stem>_keypoints.json and out_dir/<stem>_rendered.png; returns both paths."""
  json_path = Path(out_dir) / f'{stem}_keypoints.json'
  png_path = Path(out_dir) / f'{stem}_rendered.png'
  json_path.write_text(json.dumps(to_openpose_dict(people17)) + '\n')
  png = draw_openpose(image, people17)
  if not cv2.imwrite(str(png_path), cv2.cvtColor(png, cv2.COLOR_RGB2BGR)):
    raise OSError(f'could not write {png_path}')
  return json_path, png_path
