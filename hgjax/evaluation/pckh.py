"""MPII PCKh (the standard single-person protocol), file loaders and a CLI.

PCKh@t: a joint is correct when |pred - gt| <= t x 0.6 x (head-box diagonal); joints marked
missing in the ground truth are left out. Table columns average the left and right per-joint
rates (plain mean of the two, as the MPII toolkit and the SimpleBaseline/HRNet evaluators do);
Head is the head top. `Mean` pools the 14 joints of `skeleton.MPII_PCKH_JOINTS` (all but pelvis
and thorax), i.e. it is the per-joint mean weighted by the number of annotated joints;
`Mean_unweighted` is the plain mean of the 14 rates; `Mean@0.1` is `Mean` at t = 0.1 exactly.

Coordinates are 0-based in memory; MATLAB-origin files (.mat, Princeton .h5, the shared JSON)
are 1-based and converted on load (and back by `mpii_submission.save_mpii_predictions`). hgjax's
own MPII validation split (a tfds data_dir holding the built `hgjax_mpii`) is stored 0-based
and read as is. The files hgjax's MPII evaluation writes (`predictions_step*.mat`: `preds`
[N, 16, 2]; `pred_keypoints_mpii_step*.mat`: the MPII submission structure, see
`hgjax.evaluation.mpii_submission`) are 1-based and list the persons in `person_index` order,
i.e. the order of the data_dir ground truth and of gt_valid.mat.

  python -m hgjax.evaluation.pckh --gt gt_valid.mat --pred preds.mat [--pred_key KEY] [--json]
  python -m hgjax.evaluation.pckh --gt data --pred runs/mpii/predictions_step1000.mat [--json]
"""

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from hgjax import skeleton
from hgjax.evaluation import file_fields
from hgjax.evaluation import mpii_submission
from hgjax.evaluation.file_fields import field

NUM_JOINTS = 16
TFDS_NAME = 'hgjax_mpii'   # the builder of hgjax.datasets.mpii (not imported: it needs cv2)
TFDS_SPLIT = 'validation'
HEAD_BOX_FACTOR = 0.6  # 'SC_BIAS' of the reference code: head size = 0.6 x box diagonal
COLUMNS = tuple(name for name, _ in skeleton.MPII_PCKH_GROUPS)
TABLE_KEYS = COLUMNS + ('Mean', 'Mean@0.1')
JSON_KEYS = COLUMNS + ('Mean', 'Mean_unweighted', 'Mean@0.1')


class MpiiGroundTruth(NamedTuple):
  joints: np.ndarray    # [N, 16, 2] float64, 0-based pixels
  missing: np.ndarray   # [N, 16] bool, True = not annotated
  headbox: np.ndarray   # [N, 2, 2] float64: [top-left, bottom-right] x (x, y), 0-based


def _correct_and_counted(pred, gt, missing, headbox, threshold):
  """Correct [N, K] bool and annotated [N, K] bool."""
  pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
  missing, headbox = np.asarray(missing, bool), np.asarray(headbox, np.float64)
  if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
    raise ValueError(f'pred {pred.shape} and gt {gt.shape} must both be [N, K, 2]')
  if missing.shape != gt.shape[:2] or headbox.shape != (gt.shape[0], 2, 2):
    raise ValueError(f'missing {missing.shape} must be [N, K] and headbox {headbox.shape} '
                     f'[N, 2, 2] for gt {gt.shape}')
  head_size = HEAD_BOX_FACTOR * np.linalg.norm(headbox[:, 1] - headbox[:, 0], axis=-1)
  with np.errstate(divide='ignore', invalid='ignore'):
    scaled = np.linalg.norm(pred - gt, axis=-1) / head_size[:, None]
  annotated = ~missing
  # NaN predictions compare False: counted as wrong, as the MATLAB toolkit does (NaN -> inf).
  return (scaled <= threshold) & annotated, annotated


def pckh(pred, gt, missing, headbox, threshold: float = 0.5) -> np.ndarray:
  """Per-joint PCKh in percent.

  Args:
    pred, gt: [N, K, 2] pixel coordinates (same origin for both).
    missing: [N, K] bool, True where the ground truth joint is not annotated.
    headbox: [N, 2, 2] head boxes, [top-left, bottom-right] x (x, y).
    threshold: fraction of the head size (0.5 for PCKh@0.5).
  Returns:
    [K] float64, 100 x correct / annotated; NaN for a joint with no annotation.
  """
  correct, annotated = _correct_and_counted(pred, gt, missing, headbox, threshold)
  with np.errstate(divide='ignore', invalid='ignore'):
    return 100.0 * correct.sum(0) / annotated.sum(0)


def pckh_table(pred, gt, missing, headbox) -> dict:
  """The standard table (see module docstring) as {key: percent} with keys `JSON_KEYS`."""
  joints = list(skeleton.MPII_PCKH_JOINTS)
  rates = pckh(pred, gt, missing, headbox, 0.5)
  table = {name: float(np.mean(rates[list(group)])) for name, group in skeleton.MPII_PCKH_GROUPS}
  for key, threshold in (('Mean', 0.5), ('Mean@0.1', 0.1)):
    correct, annotated = _correct_and_counted(pred, gt, missing, headbox, threshold)
    table[key] = float(100.0 * correct[:, joints].sum() / annotated[:, joints].sum())
  table['Mean_unweighted'] = float(np.nanmean(rates[joints]))
  return {key: table[key] for key in JSON_KEYS}


def format_table(table: dict, num_persons: int) -> str:
  """Two-line text table: header and PCKh values (2 decimals)."""
  head = f'{"":>6}' + ''.join(f'{k:>10}' for k in TABLE_KEYS)
  row = f'{"PCKh":>6}' + ''.join(f'{table[k]:>10.2f}' for k in TABLE_KEYS)
  return f'{head}\n{row}\n({num_persons} persons; Mean unweighted {table["Mean_unweighted"]:.2f})'


# ------------------------------------------------------------------------------ file loaders


def load_tfds_ground_truth(data_dir, split: str = TFDS_SPLIT) -> MpiiGroundTruth:
  """Reads split `split` of hgjax's own `hgjax_mpii` under the tfds `data_dir`, in
  `person_index` order (the order of gt_valid.mat and of hgjax's prediction files).

  Stored 0-based already: keypoints [N, 16, 3] (v = 0 not annotated -> missing), head_box
  [N, 2, 2].
  """
  # Imported here: slow (tfds, grain, OpenCV), and only this form of --gt needs it.
  from hgjax.datasets import mpii_pipeline
  source = mpii_pipeline.open_split(data_dir, split)
  fields = ('person_index', 'keypoints', 'head_box', 'has_head_box')
  rows = sorted((tuple(source[i][k] for k in fields) for i in range(len(source))),
                key=lambda r: int(r[0]))
  if not rows:
    raise ValueError(f'{data_dir}: split {split!r} of {TFDS_NAME} is empty')
  index, keypoints, head_box, has_head_box = (np.stack(c) for c in zip(*rows, strict=True))
  if not has_head_box.all():
    raise ValueError(f'{data_dir}: split {split!r} of {TFDS_NAME} has no head box for '
                     f'person_index {index[~has_head_box][:5].tolist()} (PCKh needs them; build '
                     'it with gt_valid.mat present)')
  keypoints = keypoints.astype(np.float64)
  return MpiiGroundTruth(keypoints[..., :2], keypoints[..., 2] <= 0,
                         head_box.astype(np.float64))


def load_ground_truth(path) -> MpiiGroundTruth:
  """Reads MPII validation ground truth (converted to 0-based).

  Forms:
    directory: a tfds data_dir holding hgjax's `hgjax_mpii` (`load_tfds_ground_truth`).
    .mat (gt_valid.mat / detections_our_format.mat): `pos_gt_src` [16, 2, N], `jnt_missing`
      [16, N] (1 = not annotated), `headboxes_src` [2, 2, N]; 1-based.
    .json (mpii_valid_gt.shared_candidate.json): {"persons": [{"joints" [16][2],
      "joints_missing" [16], "headbox" [[x1, y1], [x2, y2]]}, ...]}; 1-based.
  """
  path = Path(path)
  if path.is_dir():
    return load_tfds_ground_truth(path)
  if path.suffix == '.json':
    data = file_fields.load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get('persons'), list):
      raise ValueError(f'{path}: expected a JSON object with a "persons" list')
    persons = data['persons']
    for name in ('joints', 'joints_missing', 'headbox'):
      absent = [i for i, p in enumerate(persons) if name not in p]
      if absent:
        raise ValueError(f'{path}: persons[{absent[0]}] has no field {name!r}')
    stacked = {name: [p[name] for p in persons]
               for name in ('joints', 'joints_missing', 'headbox')}
    n = len(persons)
    joints = field(stacked, path, 'joints', f'[{n}, 16, 2]',
                    lambda s: s == (n, NUM_JOINTS, 2))
    missing = field(stacked, path, 'joints_missing', f'[{n}, 16]', lambda s: s == (n, NUM_JOINTS))
    headbox = field(stacked, path, 'headbox', f'[{n}, 2, 2]', lambda s: s == (n, 2, 2))
  else:
    data = file_fields.loadmat(path)
    joints = field(data, path, 'pos_gt_src', '[16, 2, N]',
                    lambda s: len(s) == 3 and s[:2] == (NUM_JOINTS, 2))
    n = joints.shape[2]
    missing = field(data, path, 'jnt_missing', f'[16, {n}]', lambda s: s == (NUM_JOINTS, n))
    headbox = field(data, path, 'headboxes_src', f'[2, 2, {n}]', lambda s: s == (2, 2, n))
    joints, missing, headbox = joints.transpose(2, 0, 1), missing.T, headbox.transpose(2, 0, 1)
  return MpiiGroundTruth(joints - 1.0, missing.astype(bool), headbox - 1.0)


# ----------------------------------------------------------------------------------------- CLI


def evaluate_files(gt_path, pred_path, pred_key: str | None = None) -> tuple[dict, int]:
  """PCKh table for a ground-truth file and a prediction file; returns (table, N)."""
  gt = load_ground_truth(gt_path)
  preds = mpii_submission.load_predictions(pred_path, pred_key)
  if len(preds) != len(gt.joints):
    raise ValueError(f'{pred_path} has {len(preds)} persons but {gt_path} has '
                     f'{len(gt.joints)}: predictions must follow the ground-truth order '
                     'and cover it (hgjax evaluation: eval.num_examples = -1)')
  return pckh_table(preds, gt.joints, gt.missing, gt.headbox), len(preds)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m hgjax.evaluation.pckh',
                                   description=__doc__.split('\n')[0])
  parser.add_argument('--gt', required=True,
                      help='ground truth: gt_valid-style .mat, the shared validation JSON, or a '
                           'tfds data_dir with hgjax_mpii (its validation split)')
  parser.add_argument('--pred', required=True,
                      help='predictions: .mat (preds, pos_pred_src or the MPII submission '
                           'pred), Princeton .h5, or JSON')
  parser.add_argument('--pred_key', default=None,
                      help='prediction set inside a JSON {"preds": {KEY: ...}} file')
  parser.add_argument('--json', action='store_true', help='print one JSON object')
  args = parser.parse_args(argv)
  try:
    table, n = evaluate_files(args.gt, args.pred, args.pred_key)
  except (ValueError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(json.dumps(table) if args.json else format_table(table, n))
  return 0


if __name__ == '__main__':
  sys.exit(main())
