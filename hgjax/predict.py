"""Pose estimation on image files.

  python -m hgjax.predict --config experiments/synthetic.py --workdir DIR --out OUTDIR IMAGE...
  python -m hgjax.predict --config ... --workdir DIR --bbox 120,40,200,380 --out OUTDIR IMAGE

Weights: `config.eval.checkpoint` if set (a checkpoint step directory or a directory written by
`hgjax.convert`), else the latest checkpoint in `DIR/checkpoints`, else `config.init_checkpoint`.
`--config.x.y=value` overrides work as in `hgjax.main`; the model section must match the
checkpoint's.

For each IMAGE writes `OUTDIR/<stem>.json`:
  {"joint_names": [K names], "people": [{"keypoints": [[x, y, score], ...K], "score": s}]}
with (x, y) in original image pixels (0-based, pixel centres at integers) and the heatmap peak
value as score (person score: mean over joints), and `OUTDIR/<stem>.png`: the image with the
predicted skeletons drawn (and the `--bbox` box, if any). With `--format openpose` (multi-person
COCO models): `OUTDIR/<stem>_keypoints.json` in the layout of `openpose --write_json` (18 parts,
`hgjax.evaluation.openpose_json`) and `OUTDIR/<stem>_rendered.png` in the OpenPose colours.

Single-person methods (Stacked Hourglass) see one square crop per image: the square of
side max(W, H) centred on the image (the whole image, padded with black), or with `--bbox
x,y,w,h` (top-left corner and size in pixels, edges in the same convention as keypoints: the
whole image is -0.5,-0.5,W,H) the square of side 1.25 * max(w, h) centred on the box (the
hourglass margin). Peaks are taken among the heatmap cells inside the image, so every keypoint
lies in the image. Multi-person methods (Associative Embedding) find every person in the whole
image (`hgjax.evaluation.multi_person.predict_people`); they take no --bbox.
"""

import functools
import json
import sys
from pathlib import Path

import cv2
import jax
import numpy as np
import PIL.Image
import PIL.ImageOps
from absl import flags
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from ml_collections import config_flags

from hgjax import checkpoints
from hgjax import config_check
from hgjax import decode
from hgjax import methods
from hgjax import skeleton
from hgjax import train
from hgjax import transforms
from hgjax.evaluation import drawing
from hgjax.evaluation import multi_person
from hgjax.evaluation import openpose_json
from hgjax.evaluation import single_person

# Side of the square crop around a --bbox, relative to the box's longer side (the hourglass
# convention scales MPII person boxes by 1.25).
BOX_MARGIN = 1.25
# RGB colours of successive people in the PNG.
PERSON_COLOURS = ((255, 0, 0), (0, 160, 255), (0, 220, 0), (255, 0, 255), (255, 160, 0),
                  (0, 255, 255), (160, 0, 255), (255, 255, 255))
BOX_COLOUR = (255, 255, 0)


class InputError(Exception):
  """A problem with the command line or its inputs; the CLI prints it without a traceback."""


def _define_flags(argv) -> flags.FlagValues:
  """A fresh flag set per call: repeated in-process runs (tests) never see stale values, and
  these flags cannot clash with `hgjax.main`'s in the global `flags.FLAGS`. `--config.x.y`
  override flags are derived from `argv` (by default config_flags reads sys.argv)."""
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, 'experiment config file', flag_values=fv,
                                  lock_config=True, sys_argv=list(argv))
  flags.DEFINE_string('workdir', None, 'training directory holding checkpoints/', flag_values=fv)
  flags.DEFINE_string('out', None, 'output directory for <stem>.json and <stem>.png',
                      flag_values=fv)
  flags.DEFINE_string('bbox', None, 'x,y,w,h person box in pixels (single-person models); '
                      'default: the whole image', flag_values=fv)
  flags.DEFINE_enum('format', 'hgjax', ['hgjax', 'openpose'],
                    "hgjax: <stem>.json + <stem>.png; openpose: <stem>_keypoints.json in the "
                    'OpenPose --write_json layout + <stem>_rendered.png (multi-person COCO '
                    'models)', flag_values=fv)
  flags.DEFINE_bool('help', False, 'show this help', short_name='h', flag_values=fv)
  return fv


def parse_bbox(text: str) -> np.ndarray:
  """'x,y,w,h' -> float64 [4]; w and h must be positive."""
  try:
    values = np.array([float(v) for v in text.split(',')])
  except ValueError:
    values = np.zeros(0)
  if values.shape != (4,) or not np.all(np.isfinite(values)) or min(values[2:]) <= 0:
    raise InputError(f'--bbox={text!r}: expected x,y,w,h: four numbers in pixels (top-left '
                     'corner, width, height) with w > 0 and h > 0, e.g. --bbox=120,40,200,380')
  return values


def read_image(path) -> np.ndarray:
  """The image file at `path` as RGB uint8 [H, W, 3], upright per its EXIF orientation.
  Pillow (unlike OpenCV) refuses truncated files instead of returning grey pixels."""
  path = Path(path)
  if not path.is_file():
    raise InputError(f'image not found: {path}')
  try:
    with PIL.Image.open(path) as im:
      im.load()
      return np.asarray(PIL.ImageOps.exif_transpose(im).convert('RGB'))
  except (OSError, SyntaxError, ValueError) as e:   # Pillow's errors for unreadable data
    raise InputError(f'cannot read image {path}: not an image file, or corrupt or truncated '
                     f'({e})') from None


def crop_square(width: int, height: int, bbox=None):
  """(center [2], side) in pixels of the square the network sees: the whole image, or the
  `bbox` [x, y, w, h] with the hourglass margin."""
  if bbox is None:
    return np.array([(width - 1) / 2, (height - 1) / 2]), float(max(width, height))
  x, y, w, h = bbox
  return np.array([x + w / 2, y + h / 2]), BOX_MARGIN * float(max(w, h))


def crop_image(image: np.ndarray, center, side: float, size: int):
  """Warps the square (center, side) of image [H, W, 3] to [size, size, 3], black outside.

  Returns (crop, A) with A [2, 3] the map from image to crop pixels. When shrinking by more
  than 1.5x the image is first resized with area averaging (a plain bilinear warp would
  alias, e.g. a 1280 px frame into 128 px); A stays the exact original-to-crop map.
  """
  a = transforms.crop_transform(center, side / transforms.PIXELS_PER_SCALE, 0.0, (size, size))
  h, w = image.shape[:2]
  f = size / side
  src, a_src = image, a
  if f < 1 / 1.5:
    rw, rh = max(1, round(w * f)), max(1, round(h * f))
    src = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA)
    # cv2.resize maps pixel centres x -> (x + 0.5) * rw / w - 0.5; undo it before A.
    sx, sy = w / rw, h / rh
    unresize = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])
    a_src = np.concatenate([a[:, :2] @ unresize[:, :2], (a[:, :2] @ unresize[:, 2] + a[:, 2])
                            [:, None]], axis=1)
  crop = cv2.warpAffine(src, a_src, (size, size), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
  return crop, a


def inside_image_mask(crop_to_image, width: int, height: int, grid: int, stride: int):
  """bool [grid, grid]: heatmap cells whose centre maps inside the image (x in [-0.5, W - 0.5],
  y in [-0.5, H - 0.5]) through crop_to_image [2, 3]."""
  u = decode.grid_to_input(np.arange(grid, dtype=np.float64), stride)
  xy = transforms.apply_affine(np.stack(np.meshgrid(u, u), axis=-1), crop_to_image)
  return ((xy[..., 0] >= -0.5) & (xy[..., 0] <= width - 0.5) &
          (xy[..., 1] >= -0.5) & (xy[..., 1] <= height - 0.5))


def decode_in_image(heatmaps, crop_to_image, width: int, height: int, stride: int, refine: str,
                    blur_sigma: float = 1.0):
  """Peaks of heatmaps [h, w, K] (one crop) restricted to cells inside the image, mapped to
  image pixels. Returns keypoints float64 [K, 3] (x, y, score), clipped to the pixel centres
  [0, W - 1] x [0, H - 1] (sub-pixel refinement may step past the border cell)."""
  mask = inside_image_mask(crop_to_image, width, height, heatmaps.shape[0], stride)
  # 'dark' smooths before the argmax: outside cells get each map's minimum (finite), not -inf.
  fill = heatmaps.min(axis=(0, 1)) if refine == 'dark' else -np.inf
  heat = np.where(mask[..., None], heatmaps, fill).astype(np.float32)
  grid, scores = jax.device_get(decode.heatmap_peaks(heat[None], refine=refine,
                                                     blur_sigma=blur_sigma))
  xy = transforms.apply_affine(decode.grid_to_input(grid[0], stride), crop_to_image)
  xy = np.clip(xy, 0, [width - 1, height - 1])
  return np.concatenate([xy, scores[0, :, None]], axis=1)


def load_variables(config, workdir, model, mesh):
  """Model variables {'params', 'batch_stats'} (replicated over `mesh`) and where they came
  from: config.eval.checkpoint, else the latest checkpoint in workdir, else
  config.init_checkpoint."""
  replicated = NamedSharding(mesh, P())
  abstract = jax.eval_shape(functools.partial(train.create_state, config, model),
                            jax.random.key(config.seed))
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), abstract)
  bare = {'params': abstract.params, 'batch_stats': abstract.batch_stats}
  source = config.eval.checkpoint
  if source and (Path(source) / 'variables').exists():
    return checkpoints.load_variables(source, bare), source
  if source:
    if not Path(source).is_dir() or not Path(source).name.isdigit():
      raise InputError(f'config.eval.checkpoint={source!r} is neither a checkpoint step '
                       'directory (.../checkpoints/STEP) nor a directory written by hgjax.convert')
    step = int(Path(source).name)
    _check_model(config, Path(source).parent.parent, step)
    state = checkpoints.restore_state_only(Path(source).parent, step, abstract)
    return {'params': state.params, 'batch_stats': state.batch_stats}, source
  ckpt_dir = Path(workdir) / 'checkpoints'
  # Only open a manager on an existing directory: it would create an empty one otherwise.
  if ckpt_dir.is_dir():
    mngr = checkpoints.manager(workdir, config.train.keep_checkpoints)
    step = mngr.latest_step()
    if step is not None:
      _check_model(config, workdir, step)
      state = checkpoints.restore(mngr, step, abstract)
      return ({'params': state.params, 'batch_stats': state.batch_stats},
              str(ckpt_dir / str(step)))
  if config.init_checkpoint:
    return checkpoints.load_variables(config.init_checkpoint, bare), config.init_checkpoint
  raise InputError(f'no checkpoint in {ckpt_dir} and config.init_checkpoint is empty: train '
                   f'first (python -m hgjax.main --config ... --workdir {workdir}) or set '
                   '--config.init_checkpoint to a directory written by python -m hgjax.convert')


def _check_model(config, workdir, step: int) -> None:
  """Names the config.model fields that differ from the checkpoint's saved config (a shape
  mismatch deep inside orbax is hard to read)."""
  try:
    saved = checkpoints.saved_config(workdir, step)['model']
  except (FileNotFoundError, KeyError, ValueError):   # no readable config: orbax will complain
    return
  ours = config.model.to_dict()
  diff = [f'model.{k}={ours[k]!r} (checkpoint: {saved[k]!r})' for k in sorted(ours)
          if k in saved and k != 'dtype' and _plain(saved[k]) != _plain(ours[k])]
  if diff:
    raise InputError(f'config does not match checkpoint {workdir}/checkpoints/{step}: '
                     + ', '.join(diff) + '; pass the training config (or --config.model.* '
                     'overrides)')


def _plain(value):
  return list(value) if isinstance(value, (list, tuple)) else value


def predict_single_person(config, predict_fn, variables, images, bboxes, mesh):
  """Single-person predictions for images (a list of RGB uint8 [H, W, 3]) with per-image boxes
  ([4] or None). Returns a list of keypoints float64 [K, 3] (x, y, score) in image pixels."""
  size, stride = config.dataset.image_size, config.dataset.heatmap_stride
  crops, to_image = [], []
  for image, bbox in zip(images, bboxes, strict=True):
    center, side = crop_square(image.shape[1], image.shape[0], bbox)
    crop, a = crop_image(image, center, side, size)
    crops.append(crop)
    to_image.append(transforms.invert_affine(a))
  _, _, heat = single_person.run_batched(predict_fn, variables, np.stack(crops),
                                    config.eval.batch_size, mesh)
  return [decode_in_image(heat[i], to_image[i], im.shape[1], im.shape[0], stride,
                          config.eval.refine, config.eval.blur_sigma)
          for i, im in enumerate(images)]


def predict_multi_person(config, method, model, variables, image):
  """All people in image (RGB uint8 [H, W, 3]) from a multi-person method: (list of keypoints
  [K, 3] (x, y, score) in image pixels, list of person scores), best first."""
  people = multi_person.predict_people(variables, config, method, model, image)
  return [kp for kp, _ in people], [score for _, score in people]


def overlay(image: np.ndarray, people, num_joints: int, bbox=None) -> np.ndarray:
  """image RGB uint8 [H, W, 3] with each person's skeleton (keypoints [K, 3]) drawn."""
  out = image
  if bbox is not None:
    x, y, w, h = bbox
    out = cv2.rectangle(np.ascontiguousarray(out.copy()), (round(x), round(y)),
                        (round(x + w), round(y + h)), BOX_COLOUR, max(1, out.shape[0] // 256))
  edges = skeleton.edges_for(num_joints)
  for i, kp in enumerate(people):
    shown = np.concatenate([np.asarray(kp)[:, :2], np.ones((len(kp), 1))], axis=1)
    out = drawing.draw_skeleton(out, shown, PERSON_COLOURS[i % len(PERSON_COLOURS)], edges)
  return out


def to_json(people, scores, joint_names) -> str:
  """The JSON text for one image: one line per person, coordinates rounded to 0.01 px."""
  rows = []
  for kp, score in zip(people, scores, strict=True):
    points = [[round(float(x), 2), round(float(y), 2), round(float(s), 4)]
              for x, y, s in np.asarray(kp)]
    rows.append(json.dumps({'keypoints': points, 'score': round(float(score), 4)}))
  return ('{"joint_names": ' + json.dumps(list(joint_names)) + ',\n "people": [\n  '
          + ',\n  '.join(rows) + '\n ]}\n')


def write_outputs(out_dir: Path, stem: str, image, people, scores, joint_names, bbox=None):
  """Writes out_dir/<stem>.json and out_dir/<stem>.png; returns the two paths."""
  json_path, png_path = out_dir / f'{stem}.json', out_dir / f'{stem}.png'
  json_path.write_text(to_json(people, scores, joint_names))
  png = overlay(image, people, len(joint_names), bbox)
  if not cv2.imwrite(str(png_path), cv2.cvtColor(png, cv2.COLOR_RGB2BGR)):
    raise OSError(f'could not write {png_path}')
  return json_path, png_path


def predict_files(config, workdir, out_dir, image_paths, bbox=None, out_format='hgjax') -> list:
  """Runs the model of `config`/`workdir` on image files and writes the outputs (see the
  module docstring). bbox: [4] (x, y, w, h) or None; out_format: 'hgjax' | 'openpose'.
  Returns the written paths."""
  if not image_paths:
    raise InputError('no images given: pass one or more image files after the flags')
  paths = [Path(p) for p in image_paths]
  for p in paths:
    if not p.is_file():
      raise InputError(f'image not found: {p}')
  stems = [p.stem for p in paths]
  dupes = sorted({s for s in stems if stems.count(s) > 1})
  if dupes:
    raise InputError(f'several images share the name {dupes[0]!r}; outputs are named after '
                     'the file stem, so run them separately')
  method = methods.method_for(config)
  if bbox is not None and method.multi_person:
    raise InputError(f'--bbox applies to single-person models; config.model.kind='
                     f'{config.model.kind!r} finds every person in the whole image')
  if out_format == 'openpose' and not (method.multi_person and config.dataset.num_joints == 17):
    raise InputError(f'--format=openpose writes COCO-18 people: it needs a multi-person model '
                     f'of 17 COCO joints, not model.kind={config.model.kind!r} with '
                     f'dataset.num_joints={config.dataset.num_joints}')
  config_check.validate(config)
  out_dir = Path(out_dir)
  names = skeleton.joint_names(config.dataset.num_joints)
  model = predict_fn = mesh = variables = None
  written = []
  chunk = config.eval.batch_size
  for start in range(0, len(paths), chunk):
    batch = paths[start:start + chunk]
    images = [read_image(p) for p in batch]
    if bbox is not None:
      for p, im in zip(batch, images, strict=True):
        _check_box_overlaps(bbox, im, p)
    if model is None:   # after reading the first images: bad files fail before the slow part
      mesh = train.make_mesh()
      model = method.build_model(config)
      variables, source = load_variables(config, workdir, model, mesh)
      print(f'weights: {source}', flush=True)
      if not method.multi_person:
        predict_fn = single_person.make_predict_fn(config, method, model, mesh)
      out_dir.mkdir(parents=True, exist_ok=True)
    if not method.multi_person:
      results = [([kp], [kp[:, 2].mean()]) for kp in predict_single_person(
          config, predict_fn, variables, images, [bbox] * len(images), mesh)]
    else:
      results = [predict_multi_person(config, method, model, variables, im) for im in images]
    for p, im, (people, scores) in zip(batch, images, results, strict=True):
      if out_format == 'openpose':
        written += openpose_json.write_openpose(out_dir, p.stem, im, people)
        print(f'{p}: {len(people)} person(s) -> {out_dir / p.stem}_keypoints.json', flush=True)
        continue
      written += write_outputs(out_dir, p.stem, im, people, scores, names, bbox)
      print(f'{p}: {len(people)} person(s) -> {out_dir / p.stem}.json, .png', flush=True)
  return written


def _check_box_overlaps(bbox, image, path) -> None:
  x, y, w, h = bbox
  height, width = image.shape[:2]
  if x >= width - 0.5 or y >= height - 0.5 or x + w <= -0.5 or y + h <= -0.5:
    raise InputError(f'--bbox={",".join(f"{v:g}" for v in bbox)} lies outside image {path} '
                     f'({width}x{height})')


def main(argv) -> list:
  """CLI entry: argv as in sys.argv (argv[0] is the program name). Returns the written
  paths; raises InputError (or absl flags.Error) on bad input."""
  fv = _define_flags(argv)
  try:
    positional = fv(list(argv))[1:]
  except (AttributeError, KeyError) as e:   # config_flags' error for an unknown override key
    raise InputError(f'a --config.* override names a key the config does not have: {e}') from e
  if fv.help:
    print(__doc__)
    print(fv.get_help())
    return []
  missing = [f'--{n}' for n in ('config', 'workdir', 'out') if fv[n].value is None]
  if missing:
    raise InputError(f'missing required flag(s): {", ".join(missing)}')
  try:
    # config_flags defers a config file's load error to the first attribute access.
    config = fv.config.lock()
  except OSError as e:
    raise InputError(f'--config: {e}') from None
  bbox = None if fv.bbox is None else parse_bbox(fv.bbox)
  return predict_files(config, fv.workdir, fv.out, positional, bbox, fv.format)


if __name__ == '__main__':
  try:
    main(sys.argv)
  except (InputError, flags.Error) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
