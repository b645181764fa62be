"""Writes tests/data/hhr_parser_cases.npz: constructed heatmaps and tags and what the OFFICIAL
HigherHRNet parser returns for them (the expected values of tests/test_heatmap_parser.py).

  /path/to/torch-venv/bin/python tests/data/make_parser_cases.py OFFICIAL_REPO_ROOT

OFFICIAL_REPO_ROOT: a checkout of HRNet/HigherHRNet-Human-Pose-Estimation (made with commit
aa23881); its lib/core/group.py is imported from there, never copied here. Needs torch and
munkres. Case i: keys case{i}/heatmaps [K, H, W], case{i}/tags [K, H, W, L], and the official
case{i}/people [P, K, 3 + L] and case{i}/scores [P], with case{i}/params (detection threshold,
tag threshold, adjust, refine, raster_ties). Plateau cases (raster_ties = 1) run the official
parser with `topk` ties in raster order: torch leaves their order unspecified, and on a plateau
above the threshold it decides which tied pixel a person gets.
"""

import sys
import types

import numpy as np
import torch

sys.path.insert(0, sys.argv[1] + '/lib')
from core.group import HeatmapParser  # noqa: E402

K = 17


def _raster_order_topk(self, k, dim=-1, largest=True, sorted=True):
  """Tensor.topk with ties in raster (index) order: torch leaves the order of tied values
  unspecified, and on plateaus (tied pixels above the threshold) it decides the output."""
  values, indices = torch.sort(self, dim=dim, descending=largest, stable=True)
  return values.narrow(dim, 0, k), indices.narrow(dim, 0, k)


def official(heatmaps, tags, detection=0.1, tag_threshold=1.0, adjust=True, refine=True,
             raster_ties=False):
  cfg = types.SimpleNamespace(
      DATASET=types.SimpleNamespace(NUM_JOINTS=K, MAX_NUM_PEOPLE=30, WITH_CENTER=False),
      TEST=types.SimpleNamespace(DETECTION_THRESHOLD=detection, TAG_THRESHOLD=tag_threshold,
                                 USE_DETECTION_VAL=True, IGNORE_TOO_MUCH=False, IGNORE_CENTER=True,
                                 NMS_KERNEL=5, NMS_PADDING=2),
      MODEL=types.SimpleNamespace(TAG_PER_JOINT=True))
  parser = HeatmapParser(cfg)
  det = torch.from_numpy(heatmaps[None])
  tag = torch.from_numpy(tags[None])
  topk = torch.Tensor.topk
  if raster_ties:
    torch.Tensor.topk = _raster_order_topk
  try:
    ans, scores = parser.parse(det, tag, adjust, refine)
  finally:
    torch.Tensor.topk = topk
  people = np.array(ans[0], np.float32).reshape(-1, K, 3 + tags.shape[-1])
  return people, np.array(scores, np.float32)


def scene(rng, num_people, h, w, dims, spurious=0, weak=0.0, plateau=False, tag_step=1.5):
  """Gaussian joints of `num_people` people (amplitudes 0.3-1, a fraction `weak` of them below
  the detection threshold), `spurious` extra peaks, tags person * tag_step + noise near each
  joint and N(0, 3) (in quarters) elsewhere; `plateau` flattens a 2x2 block at some peaks."""
  yy, xx = np.mgrid[:h, :w].astype(np.float32)
  # Background tags on a coarse grid (quarters): the file compresses better.
  heat = rng.uniform(0, 0.03, (K, h, w)).astype(np.float32)
  tags = (np.round(rng.normal(0, 3, (K, h, w, dims)) * 4) / 4).astype(np.float32)
  for p in range(num_people):
    for k in range(K):
      x, y = rng.uniform(1, w - 2), rng.uniform(1, h - 2)
      amp = rng.uniform(0.02, 0.09) if rng.uniform() < weak else rng.uniform(0.3, 1.0)
      g = amp * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5 ** 2))
      heat[k] = np.maximum(heat[k], g)
      near = ((xx - x) ** 2 + (yy - y) ** 2) < 9
      tags[k][near] = p * tag_step + rng.normal(0, 0.15, (int(near.sum()), dims))
      if plateau and rng.uniform() < 0.3:
        r, c = int(y), int(x)
        heat[k, r:r + 2, c:c + 2] = heat[k, r:r + 2, c:c + 2].max()
  for _ in range(spurious):
    k = rng.integers(K)
    x, y = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
    heat[k] = np.maximum(heat[k], rng.uniform(0.1, 0.5) * np.exp(
        -((xx - x) ** 2 + (yy - y) ** 2) / 2.0))
  return heat.astype(np.float32), tags.astype(np.float32)


CASES = [
    # (seed, people, h, w, L, spurious, weak, plateau, tag_step, detection, tag_thr, adjust, refine)
    (0, 3, 32, 32, 1, 0, 0.0, False, 1.5, 0.1, 1.0, True, True),
    (1, 4, 32, 40, 1, 12, 0.0, False, 1.5, 0.1, 1.0, True, True),     # spurious peaks
    (2, 3, 40, 32, 1, 0, 0.3, False, 1.5, 0.1, 1.0, True, True),      # weak joints: refine
    (3, 3, 32, 32, 1, 4, 0.0, True, 1.5, 0.1, 1.0, True, True),       # plateaus
    (4, 4, 32, 48, 2, 6, 0.2, True, 1.5, 0.1, 1.0, True, True),       # L = 2 (flip layout)
    (5, 5, 32, 32, 1, 0, 0.0, False, 0.8, 0.1, 1.0, True, True),      # tags close: merges
    (6, 35, 48, 48, 1, 0, 0.0, False, 1.2, 0.1, 1.0, True, True),     # > 30 people
    (7, 3, 32, 32, 2, 8, 0.2, False, 1.5, 0.1, 1.0, False, False),    # no adjust, no refine
    (8, 0, 24, 24, 1, 0, 0.0, False, 1.5, 0.1, 1.0, True, True),      # nobody
]


def main():
  out = {}
  for i, (seed, people, h, w, dims, spurious, weak, plateau, step, det, thr, adj,
          ref) in enumerate(CASES):
    heat, tags = scene(np.random.default_rng(seed), people, h, w, dims, spurious, weak,
                       plateau, step)
    found, scores = official(heat, tags, det, thr, adj, ref, raster_ties=plateau)
    out[f'case{i}/heatmaps'], out[f'case{i}/tags'] = heat, tags
    out[f'case{i}/people'], out[f'case{i}/scores'] = found, scores
    out[f'case{i}/params'] = np.array([det, thr, adj, ref, plateau], np.float64)
    print(f'case {i}: {len(found)} people')
  np.savez_compressed(sys.argv[2] if len(sys.argv) > 2 else 'tests/data/hhr_parser_cases.npz',
                      **out)


if __name__ == '__main__':
  main()
