"""Single-person evaluation (MPII protocol): `SinglePersonEvaluator.run(state, step, writer,
workdir) -> metrics dict`.

The network sees person crops; the method's maps (flip test merged in) are decoded on the
device (peak + sub-pixel step, `config.eval.refine`), mapped back to original image pixels
through the inverse crop transform and scored with the official PCKh protocol.
"""

import functools
from pathlib import Path

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from hgjax import decode
from hgjax import skeleton
from hgjax import transforms
from hgjax.evaluation import drawing
from hgjax.evaluation import mpii_submission
from hgjax.evaluation import pckh


def predict_keypoints(variables, images, *, method, model, settings, stride: int, refine: str,
                      blur_sigma: float):
  """images uint8 [B, H, W, 3] -> (coords [B, K, 2] input pixels, scores [B, K], heatmaps
  [B, h, w, K] of the last stack, flip test merged per `settings`)."""
  heat = method.predict_maps(variables, images, model=model, settings=settings)['heatmaps']
  grid, scores = decode.heatmap_peaks(heat, refine=refine, blur_sigma=blur_sigma)
  return decode.grid_to_input(grid, stride), scores, heat


def make_predict_fn(config, method, model, mesh):
  """Jitted `predict_keypoints` over `mesh` (batch sharded, results replicated)."""
  fn = functools.partial(predict_keypoints, method=method, model=model,
                         settings=method.settings(config), stride=method.map_stride(config),
                         refine=config.eval.refine, blur_sigma=config.eval.blur_sigma)
  replicated = NamedSharding(mesh, P())
  return jax.jit(fn, in_shardings=(replicated, NamedSharding(mesh, P('data'))),
                 out_shardings=replicated)


def run_batched(predict_fn, variables, images: np.ndarray, batch_size: int, mesh):
  """Runs `predict_fn` over images [N, H, W, 3] in padded batches; returns numpy outputs.

  Every process holds all `images`; each batch becomes a global array sharded over 'data'
  (works across processes, unlike passing numpy to a multi-process jit).
  """
  batch_size = -(-batch_size // mesh.size) * mesh.size
  sharding = NamedSharding(mesh, P('data'))
  outs = []
  for i in range(0, len(images), batch_size):
    chunk = images[i:i + batch_size]
    pad = batch_size - len(chunk)
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
    chunk = jax.make_array_from_callback(chunk.shape, sharding, lambda idx, c=chunk: c[idx])
    res = jax.device_get(predict_fn(variables, chunk))
    outs.append([r[:len(chunk) - pad] for r in res])
  return [np.concatenate(parts) for parts in zip(*outs, strict=True)]


def batched_affine(points, matrices) -> np.ndarray:
  """points [N, K, 2] through per-example affine maps [N, 2, 3] -> [N, K, 2] float64."""
  m = np.asarray(matrices, np.float64)
  return np.einsum('nij,nkj->nki', m[:, :, :2], np.asarray(points, np.float64)) + m[:, None, :, 2]


class SinglePersonEvaluator:
  """PCKh evaluation of a single-person model on person crops.

  Args:
    images: uint8 [N, S, S, 3] network inputs (person crops).
    crop_to_image: float [N, 2, 3] affine maps from crop pixels to original image pixels.
    keypoints: float32 [N, K, 3] ground truth in original image pixels (v = 0 unlabelled).
    head_boxes: float32 [N, 2, 2] [[x1, y1], [x2, y2]] in original image pixels.
    mpii_format: also write the predictions in the MPII benchmark's `pred` structure.
  """

  def __init__(self, config, method, model, mesh, images, crop_to_image, keypoints, head_boxes,
               mpii_format: bool = False):
    self.config, self.mesh = config, mesh
    self.images, self.crop_to_image = images, crop_to_image
    self.keypoints, self.head_boxes = keypoints, head_boxes
    self.mpii_format = mpii_format
    self.predict_fn = make_predict_fn(config, method, model, mesh)

  def predict(self, variables):
    """-> (keypoints [N, K, 2] original pixels, scores [N, K], heatmaps [N, h, w, K])."""
    coords, scores, heat = run_batched(self.predict_fn, variables, self.images,
                                       self.config.eval.batch_size, self.mesh)
    return batched_affine(coords, self.crop_to_image), scores, heat

  def run(self, state, step: int, writer, workdir) -> dict:
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    preds, _, heat = self.predict(variables)
    table = pckh.pckh_table(preds, self.keypoints[..., :2], self.keypoints[..., 2] <= 0,
                            self.head_boxes)
    metrics = {'eval/pckh@0.5': table['Mean'] / 100, 'eval/pckh@0.1': table['Mean@0.1'] / 100,
               'eval/pckh@0.5_unweighted': table['Mean_unweighted'] / 100}
    for name, _ in skeleton.MPII_PCKH_GROUPS:
      metrics[f'eval/pckh@0.5_{name.lower()}'] = table[name] / 100
    writer.scalars(step, metrics)
    self._log_images(step, writer, preds, heat)
    if self.config.eval.write_predictions and jax.process_index() == 0:
      mpii_submission.save_mpii_predictions(Path(workdir) / f'predictions_step{step}.mat', preds)
      if self.mpii_format:
        mpii_submission.save_eval_split(Path(workdir) / f'pred_keypoints_mpii_step{step}.mat',
                                        preds, self.config)
    return metrics

  def _log_images(self, step, writer, preds, heat):
    n = min(self.config.train.num_tb_images, len(self.images))
    edges = skeleton.edges_for(self.keypoints.shape[1])
    panels = []
    for i in range(n):
      to_crop = transforms.invert_affine(self.crop_to_image[i])
      gt = self.keypoints[i].copy()
      gt[:, :2] = transforms.apply_affine(gt[:, :2], to_crop)
      pred = transforms.apply_affine(preds[i], to_crop)
      img = drawing.draw_skeleton(self.images[i], gt, (0, 255, 0), edges)
      img = drawing.draw_skeleton(img, pred, (255, 0, 0), edges)
      panels.append(np.concatenate([img, drawing.heatmap_panel(heat[i], img.shape[0])], axis=1))
    writer.images(step, 'eval/predictions(red)_gt(green)_heatmaps', np.stack(panels))
