"""MPII single-person predictions in the benchmark's own `.mat` structure (writer and reader).

Sources: MPII's "Evaluation on MPII Human Pose Dataset" instructions, single-person part
(https://mpi-inf.mpg.de/departments/computer-vision-and-machine-learning/software-and-datasets/
mpii-human-pose-dataset/evalution, toolkit http://human-pose.mpi-inf.mpg.de/results/
mpii_human_pose/evalMPII.zip); the toolkit's `evaluatePCKh.m`, `annolist2matrix.m` and
anibali/eval-mpii-pose `prepareTestResults.m` (read for the format; no code copied).

The structure: one MATLAB variable `pred`, a 1 x M struct array shaped like the release
annotation list, read by `evaluatePCKh.m` as

  pred(imgidx).annorect(ridx).annopoints.point(pidx).{x, y, id}

x, y: 1-based (MATLAB) pixels of the original image; id: joint id 0..15 in MPII order
(0 r-ankle ... 9 head top ... 15 l-wrist, `skeleton.MPII_JOINTS`); the toolkit looks points up
by id, so their order does not matter. A NaN coordinate counts as wrong. `pred(i).image.name`
is the image file name. For a test-set submission (`save_test_submission`) `pred` must be
`RELEASE.annolist(RELEASE.img_train == 0)` entry for entry (evaluatePCKh.m asserts the length)
with each person at its release annorect index; the toolkit reads only `annopoints`, so the
other release fields (objpos, scale, ...) are not copied. That file, pred_keypoints_mpii.mat,
goes to the benchmark maintainers. hgjax's MPII evaluation writes `save_submission` files of the
evaluated (validation) persons: the same structure, one entry per evaluated image, not
submittable (the benchmark scores test images only).

Files written here also hold `person_image`, `person_rect` [N] (1-based entry and annorect of
each person, in the caller's person order) so `load_submission` returns the persons in that
order; the toolkit loads only `pred` and ignores them.

  python -m hgjax.evaluation.mpii_submission --pred test_preds.mat \
      --release mpii_human_pose_v1_u12_1.mat --test_h5 annot/test.h5 --out pred_keypoints_mpii.mat

(`--test_h5`: Princeton pose-hg-train's `index`/`person`, 0-based release image and annorect
of each predicted person, the order prepareTestResults.m expects.)
"""

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

from hgjax.evaluation import file_fields

NUM_JOINTS = 16
POINT_DTYPE = [('x', 'O'), ('y', 'O'), ('id', 'O')]


def _check_preds(preds) -> np.ndarray:
  preds = np.asarray(preds, np.float64)
  if preds.ndim != 3 or preds.shape[1:] != (NUM_JOINTS, 2):
    raise ValueError(f'preds must have shape [N, 16, 2], got {preds.shape}')
  return preds


def _points(person_1based) -> np.ndarray:
  """[16, 2] 1-based -> the 1 x 16 struct array annopoints.point (x, y, id)."""
  points = np.zeros((1, NUM_JOINTS), dtype=POINT_DTYPE)
  for j, (x, y) in enumerate(person_1based):
    points[0, j] = (float(x), float(y), np.uint8(j))
  return points


def build_annolist(preds, entry, rect, names, num_rects) -> np.ndarray:
  """The `pred` struct array [1, M] for scipy.io.savemat.

  Args:
    preds: [N, 16, 2] 0-based (x, y) in original image pixels.
    entry: [N] int, 0-based index into `names` of each person's image.
    rect: [N] int, 1-based annorect index of each person within its image.
    names: [M] image file names, one per entry of `pred`.
    num_rects: [M] int, annorect count of each entry (rects without a person get an empty
      `annopoints`).
  """
  preds = _check_preds(preds)
  slots = [[None] * int(n) for n in num_rects]
  for k, (i, r) in enumerate(zip(entry, rect, strict=True)):
    if not 1 <= r <= len(slots[i]):
      raise ValueError(f'person {k}: annorect {r} outside 1..{len(slots[i])} of image '
                       f'{names[i]!r}')
    if slots[i][r - 1] is not None:
      raise ValueError(f'persons {slots[i][r - 1]} and {k} are both annorect {r} of image '
                       f'{names[i]!r}')
    slots[i][r - 1] = k
  pred = np.zeros((1, len(names)), dtype=[('image', 'O'), ('annorect', 'O')])
  for i, (name, persons) in enumerate(zip(names, slots, strict=True)):
    rects = np.zeros((1, len(persons)), dtype=[('annopoints', 'O')])
    for r, k in enumerate(persons):
      rects[0, r]['annopoints'] = (np.zeros((0, 0)) if k is None
                                   else {'point': _points(preds[k] + 1.0)})
    pred[0, i]['image'] = {'name': str(name)}
    pred[0, i]['annorect'] = rects
  return pred


def _save(path, pred, entry, rect) -> None:
  import scipy.io  # Imported here, as in file_fields.loadmat.
  scipy.io.savemat(str(path), {
      'pred': pred,
      'person_image': np.asarray(entry, np.float64).reshape(1, -1) + 1,
      'person_rect': np.asarray(rect, np.float64).reshape(1, -1)}, do_compression=True)


def rank_within_image(image_names) -> np.ndarray:
  """[N] 1-based rank of each person among the earlier persons of the same image."""
  seen = collections.Counter()
  ranks = []
  for name in image_names:
    seen[name] += 1
    ranks.append(seen[name])
  return np.array(ranks, np.int64)


def save_submission(path, preds, image_names, rect_index) -> None:
  """Writes `pred` with one entry per distinct image (first-appearance order).

  The structure of a submission over the images given here (not the whole test annolist: see
  `save_test_submission` for that).

  Args:
    path: output .mat.
    preds: [N, 16, 2] 0-based (x, y) in original image pixels.
    image_names: [N] image file name of each person.
    rect_index: [N] 1-based annorect index of each person within its image (the release's when
      known, else e.g. `rank_within_image`).
  """
  preds = _check_preds(preds)
  if not len(image_names) == len(rect_index) == len(preds):
    raise ValueError(f'{len(preds)} predictions, {len(image_names)} image names and '
                     f'{len(rect_index)} annorect indices must be equally many')
  names = list(dict.fromkeys(image_names))
  slot = {name: i for i, name in enumerate(names)}
  entry = np.array([slot[n] for n in image_names], np.int64)
  rect = np.asarray(rect_index, np.int64)
  num_rects = np.zeros(len(names), np.int64)
  np.maximum.at(num_rects, entry, rect)
  _save(path, build_annolist(preds, entry, rect, names, num_rects), entry, rect)


def save_test_submission(path, preds, release_index, release_path) -> None:
  """Writes the official test-set file: `pred` = RELEASE.annolist(img_train == 0) in order.

  Args:
    path: output .mat (the toolkit's name is pred_keypoints_mpii.mat).
    preds: [N, 16, 2] 0-based (x, y) in original image pixels.
    release_index: [N, 2] int, 1-based (image in RELEASE.annolist, annorect) of each person.
    release_path: the release annotations, mpii_human_pose_v1_u12_1.mat.
  """
  from hgjax.datasets import mpii  # Imported here: the release reader needs tfds and cv2.
  preds = _check_preds(preds)
  release_index = np.asarray(release_index, np.int64).reshape(-1, 2)
  if len(release_index) != len(preds):
    raise ValueError(f'{len(preds)} predictions but {len(release_index)} release indices')
  annolist, img_train = mpii.read_release(Path(release_path))
  test = np.flatnonzero(~img_train)
  slot = {int(i): s for s, i in enumerate(test)}
  counts = collections.Counter(i for i, _, _ in mpii.iter_annolist(annolist))
  for k, (img, _) in enumerate(release_index):
    if int(img) - 1 not in slot:
      kind = 'a training image' if 1 <= img <= len(annolist) else 'not in RELEASE.annolist'
      raise ValueError(f'person {k}: release image {int(img)} is {kind} ({release_path}); the '
                       'benchmark scores test images (img_train = 0) only')
  names = [mpii.image_name(annolist[i]) or '' for i in test]
  pred = build_annolist(preds, [slot[int(i) - 1] for i in release_index[:, 0]],
                        release_index[:, 1], names, [counts[int(i)] for i in test])
  _save(path, pred, [slot[int(i) - 1] for i in release_index[:, 0]], release_index[:, 1])


def eval_split_persons(config, num_persons: int) -> tuple[list, np.ndarray]:
  """(image names [N], annorect indices [N]) of the first `num_persons` examples of
  `config.dataset.eval_split` in person_index order, the order of `mpii_pipeline.eval_data`.

  Annorect indices are the release's when the dataset was built from the official release,
  else each person's rank within its image.
  """
  from hgjax.datasets import mpii_pipeline  # Imported here: needs tfds and grain.
  source = mpii_pipeline.data_source(config, config.dataset.eval_split)
  rows = sorted((int(e['person_index']), e['image_filename'], e['release_index'])
                for e in (source[i] for i in range(num_persons)))
  names = [n.decode() if isinstance(n, bytes) else str(n) for _, n, _ in rows]
  release = np.array([r for _, _, r in rows], np.int64).reshape(-1, 2)
  known = len(release) and (release[:, 1] > 0).all()
  return names, (release[:, 1] if known else rank_within_image(names))


def save_eval_split(path, preds, config) -> None:
  """`save_submission` for the MPII evaluation split's predictions [N, 16, 2] (0-based)."""
  names, rects = eval_split_persons(config, len(preds))
  save_submission(path, preds, names, rects)


# ------------------------------------------------------------------------------------- reader


def _items(value) -> list:
  """A loadmat(struct_as_record=False, squeeze_me=True) struct array -> list; empty -> []."""
  if value is None or (isinstance(value, np.ndarray) and value.size == 0):
    return []
  return list(value.ravel()) if isinstance(value, np.ndarray) else [value]


def _scalar(value, what):
  try:
    return float(np.asarray(value, np.float64).ravel()[0])
  except (TypeError, ValueError, IndexError):
    raise ValueError(f'{what}: value {value!r} is not a number') from None


def read_annolist(annolist, source='annolist') -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Every annorect with annopoints of an annolist (loaded with struct_as_record=False,
  squeeze_me=True), in (entry, annorect) order.

  Returns:
    points [N, 16, 2] 1-based as stored, NaN for ids without a point; entry [N] and rect [N],
    1-based.
  """
  points, entries, rects = [], [], []
  for i, item in enumerate(_items(annolist)):
    for r, rect in enumerate(_items(getattr(item, 'annorect', None))):
      what = f'{source}({i + 1}).annorect({r + 1}).annopoints.point'
      annopoints = _items(getattr(rect, 'annopoints', None))
      point_list = _items(getattr(annopoints[0], 'point', None)) if annopoints else []
      if not point_list:
        continue
      person = np.full((NUM_JOINTS, 2), np.nan)
      for p in point_list:
        j = _scalar(getattr(p, 'id', None), f'{what}.id')
        if j != int(j) or not 0 <= j < NUM_JOINTS or not np.isnan(person[int(j), 0]):
          raise ValueError(f'{what}.id: value {j:g} is not a joint id in 0..15 or repeats')
        person[int(j)] = (_scalar(getattr(p, 'x', None), f'{what}.x'),
                          _scalar(getattr(p, 'y', None), f'{what}.y'))
      points.append(person)
      entries.append(i + 1)
      rects.append(r + 1)
  return (np.stack(points) if points else np.zeros((0, NUM_JOINTS, 2)),
          np.array(entries, np.int64), np.array(rects, np.int64))


def load_submission(path) -> np.ndarray:
  """Reads a `pred` file -> predictions [N, 16, 2], 0-based (NaN where a joint has no point).

  Persons come in `person_image`/`person_rect` order when the file has them (files written
  here), else in (entry, annorect) order.
  """
  import scipy.io  # Imported here, as in file_fields.loadmat.
  try:
    m = scipy.io.loadmat(str(path), struct_as_record=False, squeeze_me=True)
  except (ValueError, NotImplementedError, OSError) as e:
    raise ValueError(f'{path}: not a readable MATLAB .mat file ({e})') from e
  if 'pred' not in m:
    raise ValueError(f"{path}: missing variable 'pred' (the MPII submission annolist)")
  points, entry, rect = read_annolist(m['pred'], f'{path}: pred')
  if 'person_image' in m and 'person_rect' in m:
    row = {(e, r): k for k, (e, r) in enumerate(zip(entry, rect, strict=True))}
    wanted = zip(np.atleast_1d(m['person_image']).astype(np.int64),
                 np.atleast_1d(m['person_rect']).astype(np.int64), strict=True)
    order = []
    for e, r in wanted:
      if (e, r) not in row:
        raise ValueError(f'{path}: person_image/person_rect name pred({e}).annorect({r}), '
                         'which has no annopoints')
      order.append(row[e, r])
    points = points[np.array(order, np.int64)] if order else points[:0]
  return points - 1.0


# ---------------------------------------------------------------------------------------- CLI


def _preds_array(value, path, name):
  """[N, 16, 2|3] -> [N, 16, 2] (a third column, e.g. a score, is dropped)."""
  value = file_fields.numeric(value, path, name)
  if value.ndim != 3 or value.shape[1] != NUM_JOINTS or value.shape[2] not in (2, 3):
    raise ValueError(f'{path}: field {name!r} has shape {value.shape}, expected [N, 16, 2]')
  return value[..., :2]


def load_predictions(path, pred_key: str | None = None) -> np.ndarray:
  """Reads MPII predictions [N, 16, 2] (converted to 0-based).

  Forms (all 1-based):
    .mat: `preds` [N, 16, 2] (pytorch-pose/HRNet, `save_mpii_predictions`), else
      `pos_pred_src` [16, 2, N] (gt_valid-style files with predictions), else `pred`, the MPII
      submission annolist (`load_submission`).
    .h5/.hdf5: `preds` [N, 16, 2] (Princeton pose-hg-train/-demo).
    .json: {"preds": {KEY: [N][16][2], ...}} (choose KEY with `pred_key`), {"preds": [N][16][2]}
      or a bare [N][16][2] list.
  """
  path = Path(path)
  if path.suffix in ('.h5', '.hdf5'):
    import h5py  # Imported here: only Princeton files need it.
    try:
      with h5py.File(path, 'r') as f:
        if 'preds' not in f:
          raise ValueError(f'{path}: missing field \'preds\' ([N, 16, 2] expected); '
                           f'fields: {sorted(f.keys())}')
        preds = _preds_array(f['preds'][()], path, 'preds')
    except OSError as e:
      raise ValueError(f'{path}: not a readable HDF5 file ({e})') from e
  elif path.suffix == '.json':
    data = file_fields.load_json(path)
    if isinstance(data, dict):
      if 'preds' not in data:
        raise ValueError(f'{path}: missing field \'preds\'')
      data = data['preds']
    name = 'preds'
    if isinstance(data, dict):
      if pred_key is None or pred_key not in data:
        raise ValueError(f'{path}: field \'preds\' holds several prediction sets; choose one '
                         f'with --pred_key (got {pred_key!r}; available: {sorted(data)})')
      data, name = data[pred_key], f'preds/{pred_key}'
    preds = _preds_array(data, path, name)
  else:
    data = file_fields.loadmat(path)
    if 'preds' in data:
      preds = _preds_array(data['preds'], path, 'preds')
    elif 'pos_pred_src' in data:
      value = file_fields.field(data, path, 'pos_pred_src', '[16, 2, N]',
                     lambda s: len(s) == 3 and s[:2] == (NUM_JOINTS, 2))
      preds = value.transpose(2, 0, 1)
    elif 'pred' in data:
      return load_submission(path)
    else:
      fields = sorted(k for k in data if not k.startswith('__'))
      raise ValueError(f'{path}: no prediction field: expected \'preds\' [N, 16, 2], '
                       f'\'pos_pred_src\' [16, 2, N] or \'pred\' (MPII submission annolist); '
                       f'fields: {fields}')
  return preds - 1.0


def save_mpii_predictions(path, preds) -> None:
  """Writes predictions as an MPII-style .mat with one variable `preds` [N, 16, 2], 1-based.

  The form read by `load_predictions`, by the pytorch-pose/HRNet evaluators and by the
  MATLAB/Octave scripts that turn it into the official test-set submission (eval-mpii-pose's
  prepareTestResults.m, which orders persons as Princeton's annot/test.h5).

  Args:
    path: output .mat path.
    preds: [N, 16, 2] 0-based (x, y) in original image pixels.
  """
  preds = np.asarray(preds, dtype=np.float64)
  if preds.ndim != 3 or preds.shape[1:] != (NUM_JOINTS, 2):
    raise ValueError(f'preds must have shape [N, 16, 2], got {preds.shape}')
  import scipy.io  # Imported here, like in file_fields.loadmat.
  scipy.io.savemat(str(path), {'preds': preds + 1.0}, do_compression=True)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m hgjax.evaluation.mpii_submission',
                                   description='Writes the MPII test-set submission file.')
  parser.add_argument('--pred', required=True,
                      help='test predictions [N, 16, 2] in --test_h5 order (any form '
                      'load_predictions reads)')
  parser.add_argument('--release', required=True, help='mpii_human_pose_v1_u12_1.mat')
  parser.add_argument('--test_h5', required=True,
                      help='Princeton annot/test.h5: index, person (0-based) per prediction')
  parser.add_argument('--out', default='pred_keypoints_mpii.mat')
  args = parser.parse_args(argv)
  import h5py  # Imported here: only this CLI reads test.h5.
  try:
    preds = load_predictions(args.pred)
    with h5py.File(args.test_h5, 'r') as f:
      missing = [k for k in ('index', 'person') if k not in f]
      if missing:
        raise ValueError(f'{args.test_h5}: missing field {missing[0]!r}')
      index = np.stack([np.ravel(f['index'][()]), np.ravel(f['person'][()])], axis=1) + 1
    save_test_submission(args.out, preds, index, args.release)
  except (ValueError, FileNotFoundError, OSError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(f'wrote {args.out}: {len(preds)} persons')
  return 0


if __name__ == '__main__':
  sys.exit(main())
