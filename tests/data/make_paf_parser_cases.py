"""Writes tests/data/paf_parser_cases.npz: constructed OpenPose maps and what the OFFICIAL python
parser returns for them (the expected values of tests/test_paf_parser.py).

  /path/to/torch-venv/bin/python tests/data/make_paf_parser_cases.py HZ_REPO_ROOT [OUT]
  /path/to/torch-venv/bin/python tests/data/make_paf_parser_cases.py HZ_REPO_ROOT --fuzz N

HZ_REPO_ROOT: a checkout of Hzzone/pytorch-openpose (made with commit 5ee71dc); its src/body.py
(`Body.__call__`, the python demo's parsing) is imported from there, never copied here. Needs
torch, numpy, scipy, opencv-python-headless and matplotlib (body.py imports them); torchvision is
imported by body.py but never used, so a stand-in module is inserted when it is missing.

How the official post-processing sees exactly the constructed maps: `Body.__init__` (which loads
the weights) is skipped with `Body.__new__`; the model is a stand-in that returns the constructed
PAFs and heatmaps as the [1, C, H, W] tensors of `Mconv7_stage6_L1` / `_L2`; `cv2.resize` (the
image scaling and both map resizes) is the identity in body.py's namespace and
`util.padRightDownCorner` pads nothing, while the "image" is a zero array of the maps' H x W. With
the single scale of body.py (`scale_search = [0.5]`), `heatmap_avg` and `paf_avg` are then exactly
the maps (float16 values, widened), and everything from line 67 on (peaks, limb scores, greedy
matching, assembly, pruning) is the official code, unchanged.

Case i: case{i}/heatmaps [H, W, 19] and case{i}/pafs [H, W, 38] (float16: the official parser
ran on exactly these values), the official case{i}/candidate [N, 4] (x, y, score, id) and
case{i}/subset [P, 20], and case{i}/branches: how often each statement of `branch_names` ran
(found by tracing body.py's lines), to show what each case exercises. `names` lists the cases.
None of the cases crashes the official code; `--fuzz N` runs it on N random cluttered scenes and
counts IndexErrors (0 of 150 when the file was made: the three-matching-rows crash is not
reachable with the COCO limb order, see hgjax/paf_parser.py).
"""

import inspect
import sys
import types

import numpy as np

try:
  import torchvision  # noqa: F401
except Exception:  # body.py imports torchvision.transforms and never uses it
  _tv = types.ModuleType('torchvision')
  _tv.transforms = types.ModuleType('torchvision.transforms')
  sys.modules['torchvision'] = _tv
  sys.modules['torchvision.transforms'] = _tv.transforms

import torch  # noqa: E402

sys.path.insert(0, sys.argv[1])
from src import body  # noqa: E402

# Statements of body.py whose execution counts are stored per case.
BRANCHES = {
    'special_k': 'special_k.append(k)',
    'found1_set_b': 'subset[j][indexB] = partBs[i]',
    'merge': 'subset = np.delete(subset, j2, 0)',
    'found2_not_disjoint': 'subset[j1][indexB] = partBs[i]',
    'new_row': 'row[indexA] = partAs[i]',
    'pruned': 'deleteIdx.append(i)',
}

# Training / network channel order of the 19 limbs (0-based 18-part ids), limb c in 2c, 2c + 1.
LIMBS = ((1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 2), (2, 3), (3, 4), (2, 16),
         (1, 5), (5, 6), (6, 7), (5, 17), (1, 0), (0, 14), (0, 15), (14, 16), (15, 17))
# A person facing the camera, 18 parts (x, y) in pixels relative to the nose, about 44 px tall.
TEMPLATE = np.array([
    (0, 0), (0, 7), (-6, 7), (-8, 15), (-9, 23), (6, 7), (8, 15), (9, 23), (-4, 23), (-4, 33),
    (-4, 43), (4, 23), (4, 33), (4, 43), (-2, -2), (2, -2), (-4, -1), (4, -1)], np.float64)


def _line_numbers():
  source, first = inspect.getsourcelines(body.Body.__call__)
  lines = {}
  for name, text in BRANCHES.items():
    hits = [first + n for n, line in enumerate(source) if line.strip() == text]
    assert len(hits) == 1, (name, hits)
    lines[hits[0]] = name
  return lines


def official(heatmaps, pafs):
  """(candidate [N, 4], subset [P, 20], branch counts) of HZ `Body.__call__` on these maps."""
  heat = torch.from_numpy(np.ascontiguousarray(heatmaps.astype(np.float32).transpose(2, 0, 1)))
  paf = torch.from_numpy(np.ascontiguousarray(pafs.astype(np.float32).transpose(2, 0, 1)))
  net = body.Body.__new__(body.Body)
  net.model = lambda data: (paf[None], heat[None])
  image = np.zeros(heatmaps.shape[:2] + (3,), np.uint8)
  saved = body.cv2, body.util.padRightDownCorner
  body.cv2 = types.SimpleNamespace(resize=lambda img, *args, **kwargs: img,
                                   INTER_CUBIC=saved[0].INTER_CUBIC)
  body.util.padRightDownCorner = lambda img, stride, pad_value: (img, [0, 0, 0, 0])
  lines = _line_numbers()
  counts = {name: 0 for name in BRANCHES}

  def tracer(frame, event, arg):
    if frame.f_code is not body.Body.__call__.__code__:
      return None

    def local(frame, event, arg):
      if event == 'line' and frame.f_lineno in lines:
        counts[lines[frame.f_lineno]] += 1
      return local
    return local

  sys.settrace(tracer)
  try:
    candidate, subset = net(image)
  finally:
    sys.settrace(None)
    body.cv2, body.util.padRightDownCorner = saved
  candidate = np.asarray(candidate, np.float64).reshape(-1, 4)
  subset = np.asarray(subset, np.float64).reshape(-1, 20)
  return candidate, subset, np.array([counts[n] for n in BRANCHES], np.int32)


class Scene:
  """Maps of one image: Gaussian part peaks (max over people) and PAF limbs (mean over the
  limbs covering a pixel)."""

  def __init__(self, h, w, sigma=2.0, width=2.0):
    self.h, self.w, self.sigma, self.width = h, w, sigma, width
    self.heat = np.zeros((h, w, 18))
    self.paf_sum = np.zeros((h, w, 19, 2))
    self.paf_cnt = np.zeros((h, w, 19))
    self.yy, self.xx = np.mgrid[:h, :w].astype(np.float64)

  def peak(self, part, x, y, amp=1.0, sigma=None):
    s = self.sigma if sigma is None else sigma
    g = amp * np.exp(-((self.xx - x) ** 2 + (self.yy - y) ** 2) / (2 * s * s))
    self.heat[..., part] = np.maximum(self.heat[..., part], g)

  def limb(self, c, a, b, strength=1.0, gaps=()):
    """PAF of limb c from a to b: pixels within `width` of the segment; `gaps`: sample indices
    (of the 10 official samples from a to b) where the field is removed afterwards."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = b - a
    length = np.hypot(*d)
    u = d / length
    rx, ry = self.xx - a[0], self.yy - a[1]
    along = rx * u[0] + ry * u[1]
    across = np.abs(rx * u[1] - ry * u[0])
    on = (along >= -1) & (along <= length + 1) & (across <= self.width)
    self.paf_sum[on, c] += strength * u
    self.paf_cnt[on, c] += 1
    for i in gaps:
      x = int(round(a[0] + d[0] * i / 9))
      y = int(round(a[1] + d[1] * i / 9))
      self.paf_sum[y, x, c] = 0
      self.paf_cnt[y, x, c] = 1

  def person(self, nose_xy, scale=1.0, amp=None, strength=None, missing=(), moved=None,
             gaps=None, hidden=()):
    """A TEMPLATE person; amp / strength: per-part / per-limb overrides {index: value};
    `missing` parts have no peak and no limbs, `hidden` parts no peak but their limbs."""
    pts = np.asarray(nose_xy, np.float64) + TEMPLATE * scale
    for part, xy in (moved or {}).items():
      pts[part] = xy
    amp, strength, gaps = amp or {}, strength or {}, gaps or {}
    for part in range(18):
      if part not in missing and part not in hidden:
        self.peak(part, *pts[part], amp.get(part, 0.9))
    for c, (a, b) in enumerate(LIMBS):
      if a not in missing and b not in missing and strength.get(c, 1.0) > 0:
        self.limb(c, pts[a], pts[b], strength.get(c, 1.0), gaps.get(c, ()))
    return pts

  def maps(self):
    heat = np.where(self.heat < 0.004, 0.0, self.heat)
    background = np.maximum(1 - heat.max(-1, keepdims=True), 0)
    paf = self.paf_sum / np.maximum(self.paf_cnt, 1)[..., None]
    return (np.concatenate([heat, background], -1).astype(np.float16),
            paf.reshape(self.h, self.w, 38).astype(np.float16))


def case_two_people():
  s = Scene(80, 80)
  s.person((20, 16))
  s.person((58, 20), scale=1.2, amp={0: 0.7, 4: 0.5})
  return s


def case_person_order():
  """Three people; the first parsed limb (neck -> r-shoulder) is strongest for the middle one,
  then the right one, so rows are not in left-to-right order. Nobody has a l-ear: limbs 16 and
  18 have no candidates at one end (`special_k`)."""
  s = Scene(72, 96)
  s.person((16, 14), strength={6: 0.5}, missing=(17,))
  s.person((48, 18), strength={6: 0.95}, amp={1: 0.6}, missing=(17,))
  s.person((80, 12), strength={6: 0.7}, missing=(17,))
  return s


def case_crossing():
  """Two people whose right forearms (and left upper arms) cross."""
  s = Scene(80, 80)
  s.person((24, 12), moved={3: (30, 30), 4: (52, 44)})
  s.person((56, 12), moved={3: (54, 28), 4: (32, 46), 6: (40, 30)})
  return s


def case_spurious():
  """Two people plus isolated peaks, a wrist near an elbow with no PAF, a weak peak just above
  thre1 after smoothing, and a stray PAF blob."""
  s = Scene(80, 80)
  s.person((20, 14))
  s.person((58, 16))
  s.peak(0, 40, 70, 0.8)
  s.peak(4, 6, 62, 0.6)
  s.peak(7, 72, 60, 0.35, sigma=3.0)
  s.peak(16, 40, 4, 0.9)
  s.limb(8, (60, 62), (70, 70), 0.8)
  return s


def case_weak_limb():
  """Limb 'neck -> r-hip' of the left person misses 2 of its 10 samples (8 above thre2:
  rejected); 'r-hip -> r-knee' misses 1 (9 above: accepted); the right person's r-elbow ->
  r-wrist field is 0.04 (below thre2)."""
  s = Scene(72, 80)
  s.person((20, 12), gaps={0: (4, 5), 1: (3,)})
  s.person((58, 14), strength={8: 0.04})
  return s


def case_plateau():
  """The nose of the left person is a flat ridge (31 px long): after smoothing several
  neighbouring pixels tie exactly (>= keeps all); the right person's l-wrist peak is a flat
  3 x 3 block in the unsmoothed map."""
  s = Scene(72, 96)
  pts = s.person((26, 16), hidden=(0,))
  ridge = 0.8 * np.exp(-(s.yy - pts[0][1]) ** 2 / 8.0) * (np.abs(s.xx - pts[0][0]) <= 15)
  s.heat[..., 0] = np.maximum(s.heat[..., 0], ridge)
  pts = s.person((70, 18), missing=(7,))
  x, y = int(pts[7][0]), int(pts[7][1])
  s.heat[y - 1:y + 2, x - 1:x + 2, 7] = 0.75
  return s


def case_pruned():
  """One full person; a 3-part person (neck, r-shoulder, r-elbow: count 3 < 4); a faint person
  (peaks 0.15, PAF 0.1: score / count < 0.4)."""
  s = Scene(80, 96)
  s.person((16, 14))
  keep = (1, 2, 3)
  s.person((48, 10), missing=tuple(p for p in range(18) if p not in keep))
  faint = (1, 2, 3, 4, 5)
  s.person((80, 20), missing=tuple(p for p in range(18) if p not in faint),
           amp=dict.fromkeys(range(18), 0.2), strength=dict.fromkeys(range(19), 0.1))
  return s


def case_merge():
  """A person without a neck: arms and head start separate rows, joined by the shoulder-ear
  limbs 17 and 18 (disjoint rows: merged); legs stay a 3-part fragment (pruned). Plus a full
  person."""
  s = Scene(80, 80)
  s.person((20, 14), missing=(1,))
  s.person((58, 16))
  return s


def case_not_disjoint():
  """Limb 17 (r-shoulder -> r-ear) joins the left person's shoulder to the right person's ear
  (the left person has no r-ear, the right one no field of its own): two matching rows that
  both hold a neck, so the ear is written into the first row as well (a duplicate)."""
  s = Scene(80, 80)
  left = s.person((20, 14), missing=(16,))
  right = s.person((58, 16), strength={9: 0})
  s.limb(9, left[2], right[16])
  return s


def case_b_only():
  """A person without neck and elbows: its r-shoulder is in no row when limb 17 (r-shoulder ->
  r-ear) connects it to the head row, which holds the ear (B) only: the official code does not
  add the shoulder."""
  s = Scene(72, 80)
  s.person((24, 12), missing=(1, 3, 6))
  s.person((60, 14))
  return s


def case_distance_prior():
  """A 64-px-high map: the left person's long upper arm (about 36 px, PAF 0.1) is rejected by
  min(0.5 H / norm - 1, 0); the right person's long arm with full PAF is kept."""
  s = Scene(64, 96)
  s.person((20, 8), moved={3: (2, 50), 4: (6, 56)}, strength={7: 0.1})
  s.person((70, 8), moved={6: (92, 50), 7: (88, 56)})
  return s


def case_clutter(seed):
  """4-5 jittered, overlapping people with missing parts, PAF noise and spurious peaks."""
  rng = np.random.default_rng(seed)
  s = Scene(88, 96)
  for _ in range(rng.integers(4, 6)):
    nose = rng.uniform((8, 6), (88, 40))
    moved = {p: nose + TEMPLATE[p] * 1.1 + rng.normal(0, 1.5, 2) for p in range(18)}
    missing = tuple(np.nonzero(rng.uniform(size=18) < 0.15)[0])
    s.person(nose, scale=1.1, moved=moved, missing=missing,
             amp={p: rng.uniform(0.3, 1.0) for p in range(18)},
             strength={c: rng.uniform(0.2, 1.0) for c in range(19)})
  for _ in range(6):
    s.peak(rng.integers(18), *rng.uniform(0, (96, 88)), rng.uniform(0.2, 0.7))
  heat, paf = s.maps()
  noise = np.round(rng.normal(0, 0.05, paf.shape) * 32) / 32   # coarse: compresses well
  noise[rng.uniform(size=paf.shape[:2]) < 0.9] = 0
  return heat, (paf + noise).astype(np.float16)


def case_nobody():
  s = Scene(64, 64)
  s.peak(0, 30, 30, 0.08)          # below thre1 after smoothing
  return s


CASES = [
    ('two_people', case_two_people),
    ('person_order', case_person_order),
    ('crossing', case_crossing),
    ('spurious', case_spurious),
    ('weak_limb', case_weak_limb),
    ('plateau', case_plateau),
    ('pruned', case_pruned),
    ('merge', case_merge),
    ('not_disjoint', case_not_disjoint),
    ('b_only', case_b_only),
    ('distance_prior', case_distance_prior),
    ('clutter_0', lambda: case_clutter(0)),
    ('clutter_1', lambda: case_clutter(1)),
    ('clutter_2', lambda: case_clutter(2)),
    ('nobody', case_nobody),
]


def fuzz(num):
  """Runs the official parser on `num` random clutter scenes; prints how many crash."""
  crashes = 0
  for seed in range(1000, 1000 + num):
    try:
      official(*case_clutter(seed))
    except IndexError:
      crashes += 1
  print(f'{crashes} of {num} random scenes crash the official parser')


def main():
  if len(sys.argv) > 3 and sys.argv[2] == '--fuzz':
    fuzz(int(sys.argv[3]))
    return
  out = {'names': np.array([name for name, _ in CASES]),
         'branch_names': np.array(list(BRANCHES))}
  for i, (name, make) in enumerate(CASES):
    made = make()
    heat, paf = made.maps() if isinstance(made, Scene) else made
    candidate, subset, branches = official(heat, paf)
    # float16 storage check: the float32 maps before rounding give the same people.
    if isinstance(made, Scene):
      heat32 = np.where(made.heat < 0.004, 0.0, made.heat)
      heat32 = np.concatenate([heat32, np.maximum(1 - heat32.max(-1, keepdims=True), 0)], -1)
      paf32 = (made.paf_sum / np.maximum(made.paf_cnt, 1)[..., None]).reshape(paf.shape)
      cand32, subset32, _ = official(heat32.astype(np.float32), paf32.astype(np.float32))
      same = (np.array_equal(cand32[:, :2], candidate[:, :2])
              and np.array_equal(subset32[:, :18], subset[:, :18]))
    else:
      same = 'n/a'
    out[f'case{i}/heatmaps'], out[f'case{i}/pafs'] = heat, paf
    out[f'case{i}/candidate'], out[f'case{i}/subset'] = candidate, subset
    out[f'case{i}/branches'] = branches
    print(f'case {i} {name}: {len(candidate)} candidates, {len(subset)} people, '
          f'branches {dict(zip(BRANCHES, branches.tolist(), strict=True))}, '
          f'float32 same people: {same}')
  np.savez_compressed(sys.argv[2] if len(sys.argv) > 2 else 'tests/data/paf_parser_cases.npz',
                      **out)


if __name__ == '__main__':
  main()
