"""Builds a small hgjax_mpii for `python -m hgjax.bench --pipeline mpii` from the MPII fixtures
in shared/data: the 3 fixture persons (mmpose's test_mpii.json, with their images) repeated
COPIES times in train and validation, through the real builder (`hgjax.datasets.build`).

  python docs/bench/make_tiny_mpii.py OUT_DIR [COPIES=1000]   # then --data-dir OUT_DIR/out

The copies matter: grain's index_shuffle costs ~19 ms per index on a 3-example dataset (vs
~27 us at 3000 and ~5 us at MPII's 22k), which would dominate the timing.
Run from the repository root (it reuses tests/test_datasets_mpii.py's layout helpers).
"""
import json
import sys
from pathlib import Path

import scipy.io

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'tests'))
import test_datasets_mpii as t  # noqa: E402

SHARED = REPO.parent / 'shared' / 'data'


def main(out: Path, copies: int) -> Path:
  records = json.loads((SHARED / t.FIXTURE / 'test_mpii.shared.json').read_text()) * copies
  our_format = scipy.io.loadmat(str(SHARED / t.EVAL_DATA / 'detections_our_format.mat'))
  gt = t._gt_valid(our_format, [0, 1, 2] * copies)
  manual = t._json_layout(out / 'manual', SHARED, records, records, gt)
  if t._build(manual, out / 'out') != 0:
    raise SystemExit('hgjax_mpii build failed')
  return out / 'out'


if __name__ == '__main__':
  print(main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1000))
