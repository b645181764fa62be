"""Bottom-up multi-person evaluation: the method's maps -> the method's grouping -> COCO AP.

Per image (any size): for each scale s of `config.grouping.scales` the image is warped, centred
and without distortion, into a square network input of side ceil(s * image_size / m) * m (m =
stride * 2**depth, the divisibility the hourglass needs) covering the square of side max(H, W)
around the image centre (the authors' test code does the same). The method's `predict_maps` runs
the network on the input (and, with `config.eval.flip_test`, on its mirror image: see the
method). Heatmaps are averaged over scales at the grid of the largest scale (bilinear resizing,
which respects the pixel-centre convention as all grids cover the same square); the other maps
(AE: tags) come from the scale nearest 1. The merged heatmaps (clipped to 1) and the other maps
go to the method's `group`; grid coordinates map back to original image pixels exactly.

Results follow the COCO results format (`hgjax.evaluation.coco_eval`), at most 20 people per
image, person score = mean joint score; pycocotools gives `eval/AP`, `eval/AP50`, ... .
"""

import functools
import json
import time
from pathlib import Path

import cv2
import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from hgjax import skeleton
from hgjax import transforms
from hgjax.evaluation import coco_eval
from hgjax.evaluation import drawing


def input_side(config, method, scale: float) -> int:
  """Network input side for a test scale: scale * image_size rounded up to the multiple the
  network needs (`method.input_multiple`)."""
  m = method.input_multiple(config)
  return max(m, int(-(-scale * config.dataset.image_size // m) * m))


def image_to_input(height: int, width: int, side: int) -> np.ndarray:
  """Affine [2, 3] from image pixels to a side x side input holding the centred max(H, W)
  square (the image unchanged when it is already side x side)."""
  center = ((width - 1) / 2.0, (height - 1) / 2.0)
  scale = max(height, width) / transforms.PIXELS_PER_SCALE
  return transforms.crop_transform(center, scale, 0.0, (side, side))


def grid_to_image(height: int, width: int, side: int, stride: int) -> np.ndarray:
  """Affine [2, 3] from the grid (u, v) of a side x side input (`image_to_input`) to image
  pixels: u -> input x = (u + 0.5) * stride - 0.5 -> image pixels."""
  s = float(stride)
  to_input = np.array([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5]])
  to_image = transforms.invert_affine(image_to_input(height, width, side))
  return np.concatenate([to_image[:, :2] @ to_input[:, :2],
                         (to_image[:, :2] @ to_input[:, 2] + to_image[:, 2])[:, None]], axis=1)


def _resize(maps: np.ndarray, size: int) -> np.ndarray:
  """maps [h, w, C] -> [size, size, C], bilinear with pixel centres aligned (cv2)."""
  if maps.shape[0] == size and maps.shape[1] == size:
    return maps
  out = cv2.resize(maps, (size, size), interpolation=cv2.INTER_LINEAR)
  return out.reshape(size, size, -1)


# Module level, so that repeated `predict_people` calls reuse the compiled function (the method,
# model and settings are hashable and static).
@functools.partial(jax.jit, static_argnames=('method', 'model', 'settings'))
def _predict_maps(variables, images, *, method, model, settings):
  return method.predict_maps(variables, images, model=model, settings=settings)


class MapPredictor:
  """The method's maps of original images, merged over `config.grouping.scales`.

  Calling it with (variables, images: list of uint8 [H, W, 3]) returns a list of (maps,
  grid_to_image) per image: maps as the method's `predict_maps` names them, for one image at the
  grid of the largest scale ('heatmaps' [h, w, K] averaged over scales and clipped to 1, the
  others [h, w, ...] from the scale nearest 1), and grid_to_image [2, 3] the affine map from that
  grid's (u, v) to original image pixels. With a mesh, batches are sharded over 'data'.
  """

  def __init__(self, config, method, model, mesh=None):
    self.config = config
    kwargs = dict(method=method, model=model, settings=method.settings(config))
    self.mesh = mesh
    if mesh is None:
      self.fn = functools.partial(_predict_maps, **kwargs)
    else:
      replicated = NamedSharding(mesh, P())
      self.fn = jax.jit(functools.partial(_predict_maps, **kwargs),
                        in_shardings=(replicated, NamedSharding(mesh, P('data'))),
                        out_shardings=replicated)
    self.scales = tuple(float(s) for s in config.grouping.scales)
    if not self.scales:
      raise ValueError('config.grouping.scales is empty')
    self.sides = [input_side(config, method, s) for s in self.scales]
    self.ref = int(np.argmax(self.sides))
    self.unit_scale = int(np.argmin([abs(s - 1.0) for s in self.scales]))
    self.stride = method.map_stride(config)

  def _run(self, variables, images: np.ndarray) -> dict:
    """The maps of images [N, S, S, 3] in batches of eval.batch_size (padded to it over a mesh,
    so every batch has one shape; without a mesh, e.g. one image, no padding)."""
    devices = 1 if self.mesh is None else self.mesh.size
    size = -(-self.config.eval.batch_size // devices) * devices
    parts = []
    for i in range(0, len(images), size):
      chunk = images[i:i + size]
      n = len(chunk)
      if n < size and self.mesh is not None:
        chunk = np.concatenate([chunk, np.zeros((size - n,) + chunk.shape[1:], chunk.dtype)])
      if self.mesh is not None:
        # Every process holds all images; the global batch is sharded over 'data'.
        chunk = jax.make_array_from_callback(chunk.shape, NamedSharding(self.mesh, P('data')),
                                             lambda idx, c=chunk: c[idx])
      maps = jax.device_get(self.fn(variables, chunk))
      parts.append({name: m[:n] for name, m in maps.items()})
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

  def __call__(self, variables, images):
    n = len(images)
    ref_grid = self.sides[self.ref] // self.stride
    heat_sum = [0.0] * n
    others = [None] * n
    for si, side in enumerate(self.sides):
      batch = []
      for image in images:
        a = image_to_input(image.shape[0], image.shape[1], side)
        if image.shape[:2] == (side, side) and np.allclose(a, np.eye(2, 3)):
          batch.append(image)
        else:
          batch.append(cv2.warpAffine(image, a, (side, side), flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=0))
      maps = self._run(variables, np.stack(batch))
      for i in range(n):
        heat_sum[i] = heat_sum[i] + _resize(maps['heatmaps'][i], ref_grid)
        if si == self.unit_scale:
          others[i] = {name: _resize(m[i].reshape(m.shape[1:3] + (-1,)), ref_grid).reshape(
              (ref_grid, ref_grid) + m.shape[3:]).astype(np.float32)
                       for name, m in maps.items() if name != 'heatmaps'}
    out = []
    for i, image in enumerate(images):
      heat = np.minimum(heat_sum[i] / len(self.sides), 1.0).astype(np.float32)
      g2i = grid_to_image(image.shape[0], image.shape[1], self.sides[self.ref], self.stride)
      out.append(({'heatmaps': heat, **others[i]}, g2i))
    return out


def people_in_image(config, method, maps: dict, grid_to_image):
  """Groups one image's merged maps with the method; returns (keypoints [N, K, 3] original
  pixels + joint score, person scores [N]). Joints never found keep score 0 (their
  coordinates are meaningless)."""
  kp, scores = method.group(config, maps)
  out = kp.astype(np.float64)
  out[..., :2] = transforms.apply_affine(kp[..., :2], grid_to_image)
  return out, scores


def predict_people(variables, config, method, model, image: np.ndarray) -> list:
  """All people in one image (for `hgjax.predict`; no box needed).

  Args:
    variables: {'params': ..., 'batch_stats': ...} of the model.
    config: the experiment config (scales, flip test, grouping parameters).
    method: its `methods.Method` (multi-person).
    model: the flax module (`method.build_model(config)`).
    image: uint8 [H, W, 3] RGB, any size.
  Returns:
    list of (keypoints float32 [K, 3] (x, y, joint score) in original image pixels, person
    score float), best first, at most config.grouping.max_people.
  """
  predictor = MapPredictor(config, method, model)
  maps, g2i = predictor(variables, [np.asarray(image, np.uint8)])[0]
  kp, scores = people_in_image(config, method, maps, g2i)
  return [(k.astype(np.float32), float(s)) for k, s in zip(kp, scores, strict=True)]


# One colour per person in the logged images (cycled).
_COLOURS = ((255, 64, 64), (64, 160, 255), (255, 200, 0), (0, 220, 120), (220, 80, 255),
            (255, 128, 0), (0, 230, 230), (255, 255, 255))


class MultiPersonEvaluator:
  """COCO keypoint AP of a bottom-up model on whole images.

  Args:
    config, method, model, mesh: as for the other evaluators.
    images: a sequence (len() and [i]) of uint8 [H, W, 3] RGB original images.
    image_ids: [N] int, the COCO image id of each image.
    gt: COCO ground truth: an annotation dict, a JSON path or a pycocotools COCO.
  """

  def __init__(self, config, method, model, mesh, images, image_ids, gt):
    self.config, self.method = config, method
    self.images, self.image_ids = images, np.asarray(image_ids)
    if len(self.images) != len(self.image_ids):
      raise ValueError(f'{len(self.images)} images but {len(self.image_ids)} image ids')
    self.gt_source = gt
    self.gt = coco_eval.load_coco(gt)
    self.predictor = MapPredictor(config, method, model, mesh)

  def predict(self, variables):
    """-> (image ids [M], keypoints [M, K, 3] original pixels + score, scores [M],
    grouping seconds per image [N], maps of the first few images)."""
    ids, kps, scores, seconds, shown = [], [], [], [], []
    chunk = max(1, self.config.eval.batch_size)
    num_shown = self.config.train.num_tb_images
    for start in range(0, len(self.images), chunk):
      batch = [np.asarray(self.images[i]) for i in
               range(start, min(start + chunk, len(self.images)))]
      for i, (maps, g2i) in enumerate(self.predictor(variables, batch)):
        t0 = time.perf_counter()
        kp, sc = people_in_image(self.config, self.method, maps, g2i)
        seconds.append(time.perf_counter() - t0)
        ids.extend([self.image_ids[start + i]] * len(kp))
        kps.append(kp)
        scores.append(sc)
        if start + i < num_shown:
          shown.append((batch[i], kp, maps['heatmaps']))
    k = self.config.dataset.num_joints
    kps = np.concatenate(kps) if kps else np.zeros((0, k, 3))
    scores = np.concatenate(scores) if scores else np.zeros(0)
    return np.asarray(ids, np.int64), kps, scores, np.asarray(seconds), shown

  def run(self, state, step: int, writer, workdir) -> dict:
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    ids, kps, scores, seconds, shown = self.predict(variables)
    results = coco_eval.results_from_keypoints(ids, kps, scores,
                                               max_per_image=coco_eval.MAX_PEOPLE_PER_IMAGE)
    stats = coco_eval.coco_keypoint_eval(self.gt, results)
    metrics = {f'eval/{name}': value for name, value in stats.items()}
    metrics['eval/grouping_ms'] = 1e3 * float(seconds.mean()) if len(seconds) else 0.0
    metrics['eval/people_per_image'] = len(results) / max(1, len(self.images))
    writer.scalars(step, metrics)
    self._log_images(step, writer, shown)
    if self.config.eval.write_predictions and jax.process_index() == 0:
      out = Path(workdir)
      out.mkdir(parents=True, exist_ok=True)
      (out / f'coco_results_step{step}.json').write_text(json.dumps(results))
      gt_path = out / 'coco_gt.json'
      if isinstance(self.gt_source, dict) and not gt_path.exists():
        gt_path.write_text(json.dumps(self.gt_source))
    return metrics

  def _log_images(self, step, writer, shown):
    edges = skeleton.edges_for(self.config.dataset.num_joints)
    panels = []
    for image, kp, heat in shown:
      img = image.copy()
      for p, person in enumerate(kp):
        img = drawing.draw_skeleton(img, person, _COLOURS[p % len(_COLOURS)], edges)
      size = max(img.shape[:2])
      canvas = np.zeros((size, size, 3), np.uint8)
      canvas[:img.shape[0], :img.shape[1]] = img
      panels.append(np.concatenate([canvas, drawing.heatmap_panel(heat, size)], axis=1))
    if panels:
      side = max(p.shape[0] for p in panels)
      panels = [cv2.resize(p, (2 * side, side)) if p.shape[0] != side else p for p in panels]
      writer.images(step, 'eval/people_heatmaps', np.stack(panels))
