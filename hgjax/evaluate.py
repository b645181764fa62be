"""Evaluators: `run(state, step, writer, workdir) -> metrics dict`.

Single-person (MPII protocol): the network sees person crops; predictions are decoded on the
device (flip test, peak + quarter-pixel refinement), mapped back to original image pixels
through the inverse crop transform and scored with the official PCKh protocol.
"""

import functools
from pathlib import Path

import cv2
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from hgjax import decode
from hgjax import pckh
from hgjax import skeleton
from hgjax import transforms
from hgjax.datasets import synthetic


def predict_keypoints(variables, images, *, model, stride: int, flip_perm, refine: str,
                      blur_sigma: float = 1.0):
  """images uint8 [B, H, W, 3] -> (coords [B, K, 2] input pixels, scores [B, K], heatmaps
  [B, h, w, K] of the last stack). With `flip_perm` (a tuple) the flipped image is run too and
  the heatmaps are merged (flip test)."""
  x = images.astype(jnp.float32) / 255.0
  k = None if flip_perm is None else len(flip_perm)
  heat = model.apply(variables, x, train=False)[:, -1]
  k = heat.shape[-1] if k is None else k
  heat = heat[..., :k]
  if flip_perm is not None:
    heat_f = model.apply(variables, x[:, :, ::-1], train=False)[:, -1, ..., :k]
    heat = decode.flip_merge(heat, heat_f, jnp.asarray(flip_perm))
  grid, scores = decode.heatmap_peaks(heat, refine=refine, blur_sigma=blur_sigma)
  return decode.grid_to_input(grid, stride), scores, heat


def make_predict_fn(config, model, mesh):
  """Jitted `predict_keypoints` over `mesh` (batch sharded, results replicated)."""
  flip = tuple(int(j) for j in skeleton.flip_for(config.dataset.num_joints))
  fn = functools.partial(predict_keypoints, model=model, stride=config.dataset.heatmap_stride,
                         flip_perm=flip if config.eval.flip_test else None,
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


def draw_skeleton(image: np.ndarray, keypoints: np.ndarray, color, edges) -> np.ndarray:
  """Draws keypoints [K, 2 or 3] (pixels; a third column <= 0 hides a joint) on a copy."""
  out = np.ascontiguousarray(image.copy())
  kp = np.asarray(keypoints, np.float32)
  shown = kp[:, 2] > 0 if kp.shape[1] > 2 else np.ones(len(kp), bool)
  r = max(1, out.shape[0] // 128)
  for a, b in edges:
    if shown[a] and shown[b]:
      cv2.line(out, tuple(int(round(v)) for v in kp[a, :2]),
               tuple(int(round(v)) for v in kp[b, :2]), color, r, cv2.LINE_AA)
  for j in np.flatnonzero(shown):
    cv2.circle(out, tuple(int(round(v)) for v in kp[j, :2]), r + 1, color, -1, cv2.LINE_AA)
  return out


def heatmap_panel(heatmaps: np.ndarray, size: int) -> np.ndarray:
  """heatmaps [h, w, K] -> uint8 [size, size, 3]: max over joints, colour-mapped."""
  m = np.clip(heatmaps.max(axis=-1), 0, 1)
  m = cv2.resize((m * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
  return cv2.applyColorMap(m, cv2.COLORMAP_JET)[..., ::-1]


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
  """

  def __init__(self, config, model, mesh, images, crop_to_image, keypoints, head_boxes):
    self.config, self.mesh = config, mesh
    self.images, self.crop_to_image = images, crop_to_image
    self.keypoints, self.head_boxes = keypoints, head_boxes
    self.predict_fn = make_predict_fn(config, model, mesh)

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
      pckh.save_mpii_predictions(Path(workdir) / f'predictions_step{step}.mat', preds)
      if self.config.dataset.name == 'mpii':   # also in the MPII benchmark's `pred` structure
        from hgjax import mpii_submission
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
      img = draw_skeleton(self.images[i], gt, (0, 255, 0), edges)
      img = draw_skeleton(img, pred, (255, 0, 0), edges)
      panels.append(np.concatenate([img, heatmap_panel(heat[i], img.shape[0])], axis=1))
    writer.images(step, 'eval/predictions(red)_gt(green)_heatmaps', np.stack(panels))


def synthetic_eval_data(config):
  """(images, crop_to_image, keypoints, head_boxes) of the held-out synthetic split."""
  d = config.dataset
  exs = [synthetic.person_example(config.seed, d.eval_split, i, d.image_size)
         for i in range(d.synthetic_num_eval)]
  identity = np.tile(np.eye(2, 3, dtype=np.float64), (len(exs), 1, 1))
  return (np.stack([e['image'] for e in exs]), identity,
          np.stack([e['keypoints'] for e in exs]).astype(np.float32),
          np.stack([e['head_box'] for e in exs]).astype(np.float32))


def make_evaluator(config, model, mesh):
  """The evaluator for `config.dataset.name`."""
  name = config.dataset.name
  if name == 'synthetic':
    data = synthetic_eval_data(config)
  elif name == 'mpii':
    from hgjax.datasets import mpii_pipeline
    data = mpii_pipeline.eval_data(config)
  elif name in ('coco', 'synthetic_scenes'):
    from hgjax import ae_evaluate
    return ae_evaluate.make_evaluator(config, model, mesh)
  else:
    raise ValueError(f'config.dataset.name={name!r}')
  n = config.eval.num_examples
  if n >= 0:
    data = tuple(a[:n] for a in data)
  return SinglePersonEvaluator(config, model, mesh, *data)
