"""Joint names, flip permutations, skeleton edges and COCO OKS sigmas. Pure data.

Joint indices follow the datasets' own orders (MPII: 0 r-ankle ... 15 l-wrist; COCO: 0 nose ...
16 r-ankle). `*_FLIP` maps joint j to its mirror image (a permutation, its own inverse).
"""

import numpy as np

MPII_JOINTS = (
    'r_ankle', 'r_knee', 'r_hip', 'l_hip', 'l_knee', 'l_ankle', 'pelvis', 'thorax',
    'upper_neck', 'head_top', 'r_wrist', 'r_elbow', 'r_shoulder', 'l_shoulder', 'l_elbow',
    'l_wrist',
)
MPII_FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
MPII_EDGES = (
    (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
    (10, 11), (11, 12), (12, 7), (7, 13), (13, 14), (14, 15),
)
# Columns of the PCKh table: name -> joints averaged (left and right together).
MPII_PCKH_GROUPS = (
    ('Head', (9,)), ('Shoulder', (12, 13)), ('Elbow', (11, 14)), ('Wrist', (10, 15)),
    ('Hip', (2, 3)), ('Knee', (1, 4)), ('Ankle', (0, 5)),
)
# Joints in the PCKh mean: all but pelvis (6) and thorax (7); upper neck (8) is counted.
MPII_PCKH_JOINTS = (0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15)

COCO_JOINTS = (
    'nose', 'l_eye', 'r_eye', 'l_ear', 'r_ear', 'l_shoulder', 'r_shoulder', 'l_elbow',
    'r_elbow', 'l_wrist', 'r_wrist', 'l_hip', 'r_hip', 'l_knee', 'r_knee', 'l_ankle', 'r_ankle',
)
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
COCO_EDGES = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)
# pycocotools' default per-joint OKS sigmas (COCO keypoint evaluation).
COCO_SIGMAS = np.array([
    .26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89,
]) / 10.0
# Associative Embedding grouping order: head first, then torso, then limbs outwards.
AE_JOINT_ORDER = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)


def grouping_order(num_joints: int) -> tuple:
  """The order bottom-up grouping visits joint types: the AE papers' for the 17 COCO joints,
  else 0..K-1."""
  return AE_JOINT_ORDER if num_joints == 17 else tuple(range(num_joints))


def flip_permutation(num_joints: int, pairs) -> np.ndarray:
  """Returns perm [K] int32 with perm[j] = mirror joint of j."""
  perm = np.arange(num_joints, dtype=np.int32)
  for a, b in pairs:
    perm[a], perm[b] = b, a
  return perm


MPII_FLIP = flip_permutation(16, MPII_FLIP_PAIRS)
COCO_FLIP = flip_permutation(17, COCO_FLIP_PAIRS)


def joint_names(num_joints: int) -> tuple:
  """Joint names for a model predicting `num_joints` joints (16 = MPII, 17 = COCO)."""
  if num_joints == 16:
    return MPII_JOINTS
  if num_joints == 17:
    return COCO_JOINTS
  raise ValueError(f'no skeleton with {num_joints} joints; known: 16 (MPII), 17 (COCO)')


def flip_for(num_joints: int) -> np.ndarray:
  """The flip permutation [K] for 16 (MPII) or 17 (COCO) joints."""
  if num_joints == 16:
    return MPII_FLIP
  if num_joints == 17:
    return COCO_FLIP
  raise ValueError(f'no skeleton with {num_joints} joints; known: 16 (MPII), 17 (COCO)')


def edges_for(num_joints: int) -> tuple:
  """Skeleton edges (pairs of joint indices) for drawing."""
  if num_joints == 16:
    return MPII_EDGES
  if num_joints == 17:
    return COCO_EDGES
  raise ValueError(f'no skeleton with {num_joints} joints; known: 16 (MPII), 17 (COCO)')
