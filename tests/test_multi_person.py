"""Bottom-up evaluation: flip test and multi-scale merging, geometry back to image pixels,
predict_people, and the evaluator end to end (results JSON, pycocotools AP)."""

import json

import cv2
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgjax import defaults
from hgjax import skeleton
from hgjax import train
from hgjax.evaluation import multi_person
from hgjax.methods import ae
from hgjax.nn import ae_hourglass as ae_net

K = 17


class DotModel(nn.Module):
  """A parameter-free stand-in for the AE network, equivariant to flips and scaling.

  Every joint's heatmap is the red channel average-pooled to the stride-4 grid (a red dot in
  the image is a detection of every joint there); every joint's tag is 4 x the pooled green
  channel (the dot's colour carries its person's tag). Output [B, 1, H/4, W/4, 2K].
  """

  @nn.compact
  def __call__(self, images, train: bool):
    pooled = nn.avg_pool(images, (4, 4), strides=(4, 4))
    heat = jnp.repeat(pooled[..., :1], K, axis=-1)
    tags = jnp.repeat(4.0 * pooled[..., 1:2], K, axis=-1)
    return jnp.concatenate([heat, tags], -1)[:, None]


def _config(scales=(1.0,), flip=True, size=64):
  c = defaults.get_config()
  c.dataset.name = 'synthetic_scenes'
  c.dataset.num_joints = K
  c.dataset.image_size = size
  c.model.kind = 'ae'
  c.model.depth = 1                 # inputs are multiples of 4 * 2 = 8 px
  c.model.num_outputs = 2 * K
  c.model.tag_dim = 1
  c.eval.batch_size = 2
  c.eval.flip_test = flip
  c.grouping.scales = scales
  return c


def _dots(height, width, dots):
  """uint8 image with Gaussian red dots (x, y, green value, sigma px)."""
  yy, xx = np.mgrid[:height, :width]
  image = np.zeros((height, width, 3), np.float64)
  for x, y, green, sigma in dots:
    g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    image[..., 0] = np.maximum(image[..., 0], 255 * g)
    image[..., 1] = np.where(g > 0.05, green, image[..., 1])
  return np.round(image).astype(np.uint8)


NO_VARIABLES = {'params': {}, 'batch_stats': {}}


@pytest.mark.parametrize('scales', [(1.0,), (2.0, 1.0, 0.5)])
def test_people_found_at_their_image_position(scales):
  dots = [(40.0, 30.0, 0, 9.0), (130.0, 95.0, 200, 9.0)]
  image = _dots(120, 170, dots)                       # not square, not a multiple of 8
  people = multi_person.predict_people(NO_VARIABLES, _config(scales), ae.METHOD, DotModel(),
                                       image)
  assert len(people) == 2
  found = sorted((kp[0, 0], kp[0, 1]) for kp, _ in people)
  # Two pixel tolerance: grid quantisation (stride 4 at 64 px for a 170 px image) + quarter.
  np.testing.assert_allclose(found, [d[:2] for d in dots], atol=2.0)
  for kp, score in people:
    assert kp.shape == (K, 3) and kp.dtype == np.float32
    np.testing.assert_allclose(kp[:, :2], np.broadcast_to(kp[:1, :2], (K, 2)))   # on its dot
    assert score == pytest.approx(kp[:, 2].mean())


def test_flip_test_merges_heatmaps_and_appends_swapped_tags():
  model = ae_net.AssociativeEmbeddingNet(num_stacks=1, features=8, increase=4, inner_increase=4,
                                         num_outputs=2 * K, depth=1)
  # Random parameters from the shapes alone: compiling flax's initialisers is slow on the CPU.
  rng = np.random.default_rng(0)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                             train=False))
  variables = jax.tree.map(lambda s: rng.normal(0, 0.1, s.shape).astype(s.dtype), shapes)
  images = rng.integers(0, 256, (2, 32, 32, 3), np.uint8)
  perm = tuple(int(j) for j in skeleton.COCO_FLIP)
  maps = ae.predict_maps(variables, images, model=model, settings=ae.settings(_config()))
  heat, tags = maps['heatmaps'], maps['tags']
  x = images.astype(np.float32) / 255
  out = np.asarray(model.apply(variables, x, train=False))[:, -1]
  out_f = np.asarray(model.apply(variables, x[:, :, ::-1], train=False))[:, -1, :, ::-1]
  tol = dict(rtol=1e-4, atol=1e-4 * np.abs(out).max())
  assert np.abs(out).max() > 0.1 and not np.allclose(out, out_f, **tol)
  np.testing.assert_allclose(heat, 0.5 * (out[..., :K] + out_f[..., :K][..., list(perm)]), **tol)
  np.testing.assert_allclose(tags[..., 0], out[..., K:], **tol)
  np.testing.assert_allclose(tags[..., 1], out_f[..., K:][..., list(perm)], **tol)


def test_multiscale_heatmaps_averaged_tags_from_scale_one():
  config = _config(scales=(1.0, 0.5), flip=False)
  image = _dots(64, 64, [(20.0, 40.0, 100, 6.0)])
  predictor = multi_person.MapPredictor(config, ae.METHOD, DotModel())
  maps, g2i = predictor(NO_VARIABLES, [image])[0]
  heat, tags = maps['heatmaps'], maps['tags']
  assert heat.shape == (16, 16, K) and tags.shape == (16, 16, K, 1)
  def dot_maps(img):
    return np.asarray(DotModel().apply({}, img[None].astype(np.float32) / 255, train=False))[0, 0]

  full = dot_maps(image)
  # Scale 0.5: the image resampled to 32 px (a = 0.5 x + 0.25 in each axis), its 8 px grid
  # maps upsampled to 16 px, averaged with scale 1's.
  half = cv2.warpAffine(image, np.array([[0.5, 0, -0.25], [0, 0.5, -0.25]]), (32, 32),
                        flags=cv2.INTER_LINEAR)
  up = cv2.resize(dot_maps(half)[..., :K], (16, 16), interpolation=cv2.INTER_LINEAR)
  np.testing.assert_allclose(heat, 0.5 * (full[..., :K] + up), rtol=1e-5, atol=1e-6)
  assert not np.allclose(heat, full[..., :K], atol=1e-3)
  np.testing.assert_allclose(tags[..., 0], full[..., K:], atol=1e-6)
  # The image is already the 64 px input at scale 1: grid -> pixels is x = 4u + 1.5.
  np.testing.assert_allclose(g2i, [[4, 0, 1.5], [0, 4, 1.5]], atol=1e-12)


def test_input_side_and_geometry_round_trip():
  config = _config(size=512)
  config.model.depth = 4
  sides = [multi_person.input_side(config, ae.METHOD, s) for s in (2.0, 1.0, 0.5, 0.3)]
  assert sides == [1024, 512, 256, 192]
  # grid -> image is the inverse of image -> input followed by input -> grid.
  a = multi_person.image_to_input(425, 640, 512)
  g2i = multi_person.grid_to_image(425, 640, 512, 4)
  pts = np.array([[0.0, 0.0], [639.0, 424.0], [100.5, 33.25]])
  inp = pts @ a[:, :2].T + a[:, 2]
  grid = (inp + 0.5) / 4 - 0.5
  np.testing.assert_allclose(grid @ g2i[:, :2].T + g2i[:, 2], pts, atol=1e-9)
  # The longer side spans the input exactly; the image is centred.
  np.testing.assert_allclose(np.array([-0.5, 639.5]) * a[0, 0] + a[0, 2], [-0.5, 511.5])


class _Writer:
  def __init__(self):
    self.rows, self.logged = [], []

  def scalars(self, step, values):
    self.rows.append((step, dict(values)))

  def images(self, step, name, images):
    self.logged.append((name, images.shape))


def _gt(points_per_image, sizes):
  """COCO GT with one person per point, all 17 joints on the point."""
  images, anns = [], []
  for image_id, (points, (h, w)) in enumerate(zip(points_per_image, sizes, strict=True), 1):
    images.append({'id': image_id, 'width': w, 'height': h, 'file_name': f'{image_id}.png'})
    for x, y in points:
      anns.append({'id': len(anns) + 1, 'image_id': image_id, 'category_id': 1, 'iscrowd': 0,
                   'area': 900.0, 'bbox': [x - 15, y - 15, 30, 30], 'num_keypoints': K,
                   'keypoints': [x, y, 2] * K})
  category = {'id': 1, 'name': 'person', 'keypoints': list(skeleton.COCO_JOINTS),
              'skeleton': [[a + 1, b + 1] for a, b in skeleton.COCO_EDGES]}
  return {'images': images, 'annotations': anns, 'categories': [category]}


def test_evaluator_end_to_end(tmp_path):
  config = _config(scales=(1.0,))
  config.train.num_tb_images = 2
  dots = [[(20.0, 20.0, 0, 6.0), (44.0, 40.0, 150, 6.0)], [(30.0, 50.0, 60, 6.0)],
          [(12.0, 40.0, 0, 6.0), (52.0, 12.0, 120, 6.0), (40.0, 52.0, 250, 6.0)]]
  images = [_dots(64, 64, d) for d in dots]
  gt = _gt([[p[:2] for p in d] for d in dots], [(64, 64)] * 3)
  mesh = train.make_mesh()
  evaluator = multi_person.MultiPersonEvaluator(config, ae.METHOD, DotModel(), mesh, images,
                                                [1, 2, 3], gt)
  writer = _Writer()

  class State:
    params, batch_stats = {}, {}

  metrics = evaluator.run(State, 7, writer, tmp_path)
  assert metrics['eval/AP'] == pytest.approx(1.0)
  assert metrics['eval/AR'] == pytest.approx(1.0)
  assert metrics['eval/people_per_image'] == pytest.approx(2.0)
  assert writer.rows[0][0] == 7 and writer.rows[0][1]['eval/AP'] == metrics['eval/AP']
  assert writer.logged and writer.logged[0][1][0] == 2
  results = json.loads((tmp_path / 'coco_results_step7.json').read_text())
  assert len(results) == 6 and {r['image_id'] for r in results} == {1, 2, 3}
  for r in results:
    kp = np.array(r['keypoints']).reshape(K, 3)
    assert r['score'] == pytest.approx(kp[:, 2].mean())
  assert json.loads((tmp_path / 'coco_gt.json').read_text()) == gt


def test_results_keep_at_most_20_people_per_image(tmp_path):
  config = _config(scales=(1.0,), flip=False, size=192)
  config.grouping.max_people = 30
  config.train.num_tb_images = 0
  # 25 dots with well separated tags (green steps of 10 -> tag steps of 40/255 * 4 > 1 apart).
  pts = [(12.0 + 38 * (i % 5), 12.0 + 38 * (i // 5), 10 * i, 4.0) for i in range(25)]
  image = _dots(192, 192, pts)
  gt = _gt([[p[:2] for p in pts]], [(192, 192)])
  evaluator = multi_person.MultiPersonEvaluator(config, ae.METHOD, DotModel(),
                                                train.make_mesh(), [image], [1], gt)
  ids, kps, scores, _, _ = evaluator.predict(NO_VARIABLES)
  assert len(kps) == 25                                   # grouping found everyone
  writer = _Writer()

  class State:
    params, batch_stats = {}, {}

  evaluator.run(State, 0, writer, tmp_path)
  results = json.loads((tmp_path / 'coco_results_step0.json').read_text())
  assert len(results) == 20
  assert min(r['score'] for r in results) >= np.sort(scores)[-20] - 1e-6
