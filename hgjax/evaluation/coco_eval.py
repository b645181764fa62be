"""COCO keypoint AP/AR through pycocotools (the reference implementation) and a CLI.

Results follow the COCO results format: a list of {"image_id", "category_id" (1 = person),
"keypoints" [x, y, score] * 17 in original image pixels, "score"}. COCOeval keeps the 20
highest-scoring people per image (maxDets=20); `results_from_keypoints` truncates to that.

  python -m hgjax.evaluation.coco_eval --gt person_keypoints_val2017.json --pred results.json \
      [--json]
"""

import argparse
import contextlib
import io
import json
import sys

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

STAT_NAMES = ('AP', 'AP50', 'AP75', 'APm', 'APl', 'AR', 'AR50', 'AR75', 'ARm', 'ARl')
MAX_PEOPLE_PER_IMAGE = 20  # COCOeval's keypoint maxDets
PERSON_CATEGORY_ID = 1


def _quiet(enabled: bool):
  """Context manager swallowing pycocotools' prints when `enabled`."""
  return contextlib.redirect_stdout(io.StringIO()) if enabled else contextlib.nullcontext()


def load_coco(gt, quiet: bool = True) -> COCO:
  """A COCO object from an annotation dict, a JSON path, or the COCO object itself."""
  if isinstance(gt, COCO):
    return gt
  with _quiet(quiet):
    if isinstance(gt, dict):
      coco = COCO()
      coco.dataset = gt
      coco.createIndex()
      return coco
    return COCO(str(gt))


def coco_keypoint_eval(gt, results: list, quiet: bool = True) -> dict:
  """OKS keypoint AP/AR of `results` against the ground truth.

  Args:
    gt: path of a COCO annotation JSON or a `pycocotools.coco.COCO`.
    results: list of result dicts (COCO results format, see module docstring).
    quiet: silence pycocotools' progress and summary prints.
  Returns:
    {name: float} for `STAT_NAMES` (COCOeval.stats order), fractions in [0, 1]. Empty
    results give 0 everywhere.
  Raises:
    ValueError: results referring to images absent from the ground truth, or malformed.
  """
  coco_gt = load_coco(gt, quiet)
  if not isinstance(results, list):
    raise ValueError(f'results must be a list of dicts, got {type(results).__name__}')
  if not results:
    return {name: 0.0 for name in STAT_NAMES}
  num_joints = len(coco_gt.loadCats(PERSON_CATEGORY_ID)[0]['keypoints'])
  for i, r in enumerate(results):
    absent = {'image_id', 'category_id', 'keypoints', 'score'} - set(r)
    if absent:
      raise ValueError(f'result {i} lacks {sorted(absent)}')
    if len(r['keypoints']) != 3 * num_joints:
      raise ValueError(f'result {i} has {len(r["keypoints"])} keypoint values, expected '
                       f'3 x {num_joints}')
  unknown = sorted({r['image_id'] for r in results} - set(coco_gt.getImgIds()))
  if unknown:
    raise ValueError(f'{len(unknown)} result image ids are not in the ground truth, e.g. '
                     f'{unknown[:5]}')
  # loadRes adds fields (area, bbox, id) to the dicts it is given: hand it copies.
  copies = [dict(r, keypoints=[float(v) for v in r['keypoints']], score=float(r['score']))
            for r in results]
  with _quiet(quiet):
    coco_dt = coco_gt.loadRes(copies)
    evaluator = COCOeval(coco_gt, coco_dt, 'keypoints')
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
  return {name: float(value) for name, value in zip(STAT_NAMES, evaluator.stats, strict=True)}


def results_from_keypoints(image_ids, keypoints, scores,
                           max_per_image: int = MAX_PEOPLE_PER_IMAGE) -> list:
  """COCO results from arrays, keeping the `max_per_image` highest-scoring people per image.

  Args:
    image_ids: [N] int, the image of each person.
    keypoints: [N, K, 3] (x, y, joint score) in original image pixels (0-based; COCO's own
      pixel convention is the same up to the sub-pixel origin, which OKS ignores).
    scores: [N] person scores.
    max_per_image: people kept per image.
  Returns:
    list of result dicts, per image in decreasing score, images in first-appearance order.
  """
  image_ids = np.asarray(image_ids).reshape(-1)
  keypoints = np.asarray(keypoints, dtype=np.float64)
  scores = np.asarray(scores, dtype=np.float64).reshape(-1)
  if keypoints.ndim != 3 or keypoints.shape[-1] != 3 or not (
      len(image_ids) == len(keypoints) == len(scores)):
    raise ValueError(f'need image_ids [N], keypoints [N, K, 3], scores [N]; got '
                     f'{image_ids.shape}, {keypoints.shape}, {scores.shape}')
  results = []
  for image_id in dict.fromkeys(image_ids.tolist()):  # unique, first-appearance order
    people = np.flatnonzero(image_ids == image_id)
    best = people[np.argsort(-scores[people], kind='stable')[:max_per_image]]
    for i in best:
      results.append({'image_id': image_id, 'category_id': PERSON_CATEGORY_ID,
                      'keypoints': keypoints[i].reshape(-1).tolist(), 'score': float(scores[i])})
  return results


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m hgjax.evaluation.coco_eval',
                                   description=__doc__.split('\n')[0])
  parser.add_argument('--gt', required=True, help='COCO keypoint annotation JSON')
  parser.add_argument('--pred', required=True, help='COCO results JSON (a list of results)')
  parser.add_argument('--json', action='store_true', help='print one JSON object only')
  args = parser.parse_args(argv)
  try:
    with open(args.pred) as f:
      results = json.load(f)
    stats = coco_keypoint_eval(args.gt, results, quiet=args.json)
  except (ValueError, OSError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  if args.json:
    print(json.dumps(stats))
  else:
    print('  '.join(f'{name} {value:.4f}' for name, value in stats.items()))
  return 0


if __name__ == '__main__':
  sys.exit(main())
