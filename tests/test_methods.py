"""The method interface: every method's codec round trip (people -> encode -> decode -> the same
people), encode's layout against the network outputs, device targets against host encoding,
the method table and `api.parse_heatmaps`."""

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from flax import traverse_util

from hgjax import api
from hgjax import defaults
from hgjax import methods
from hgjax.methods import ae
from hgjax.methods import base
from hgjax.methods import shg


def _shg_config():
  c = defaults.get_config()
  c.dataset.image_size = 64
  c.targets.sigma = 1.0
  c.eval.refine = 'quarter'
  return c


def _ae_config(tag_scale=1.0, tag_threshold=1.0):
  c = defaults.get_config()
  c.dataset.name = 'synthetic_scenes'
  c.dataset.num_joints = 17
  c.dataset.image_size = 128
  c.model.kind = 'ae'
  c.model.num_outputs = 34
  c.model.tag_dim = 1
  c.targets.sigma = 2.0
  c.grouping.tag_scale = tag_scale
  c.grouping.tag_threshold = tag_threshold
  return c


def _people(rng, num_people, k, image_hw, visible=1.0):
  """people [P, K, 3] in input pixels: person p's joints in its own horizontal band (bands 32
  px apart, so that a joint's Gaussians of different people never touch), v = 2 with
  probability `visible`, else 0."""
  h, w = image_hw
  band = h / num_people
  x = rng.uniform(2, w - 3, (num_people, k))
  y = np.arange(num_people)[:, None] * band + rng.uniform(2, band - 3, (num_people, k))
  v = np.where(rng.uniform(size=(num_people, k)) < visible, 2.0, 0.0)
  return np.stack([x, y, v], axis=-1).astype(np.float32)


@pytest.mark.parametrize('image_hw', [(64, 64), (64, 96)])
def test_shg_codec_round_trip_within_half_a_heatmap_pixel(image_hw):
  config = _shg_config()
  stride = config.dataset.heatmap_stride
  for seed in range(5):
    person = _people(np.random.default_rng(seed), 1, 16, image_hw)
    maps = api.encode(config, person, image_hw)
    assert maps['heatmaps'].shape == (image_hw[0] // 4, image_hw[1] // 4, 16)
    people, scores = api.decode(config, maps, image_hw)
    assert people.shape == (1, 16, 3) and scores.shape == (1,)
    # The quarter offset rule: the argmax cell moved 0.25 toward the larger neighbour.
    error = np.abs(people[0, :, :2] - person[0, :, :2]) / stride
    assert error.max() <= 0.5, error.max()
    assert np.all(people[0, :, 2] > 0.6)     # the peak of a Gaussian at most 0.5 px off
    assert scores[0] == pytest.approx(people[0, :, 2].mean())


def _match(found, truth):
  """Optimal assignment of found people to true ones by mean distance over visible joints;
  returns the distance [N_true, K] of each true person's joints to its match."""
  vis = truth[..., 2] > 0
  cost = np.array([[np.linalg.norm(f[:, :2] - t[:, :2], axis=-1)[v].mean() for f in found]
                   for t, v in zip(truth, vis, strict=True)])
  rows, cols = scipy.optimize.linear_sum_assignment(cost)
  return np.stack([np.linalg.norm(found[c, :, :2] - truth[r, :, :2], axis=-1)
                   for r, c in zip(rows, cols, strict=True)])


@pytest.mark.parametrize(('tag_scale', 'tag_threshold'), [(1.0, 1.0), (2.0, 1.5)])
def test_ae_codec_round_trip_recovers_every_person(tag_scale, tag_threshold):
  """The reference decoding (scale 1, threshold 1) and synthetic_ae's (2, 1.5) both recover
  every person of the ideal maps, with each person's index as its tag: joints within one
  heatmap pixel, nobody extra."""
  config = _ae_config(tag_scale, tag_threshold)
  stride = config.dataset.heatmap_stride
  image_hw = (96, 128)
  for seed in range(4):
    truth = _people(np.random.default_rng(seed), 3, 17, image_hw, visible=0.85)
    maps = api.encode(config, truth, image_hw)
    assert set(np.unique(maps['tags'])) <= {0.0, 1.0, 2.0}
    people, scores = api.decode(config, maps, image_hw)
    assert len(people) == 3 and scores.shape == (3,)
    assert np.all(np.diff(scores) <= 0)                                  # best first
    distance = _match(people, truth)
    visible = truth[..., 2] > 0
    assert distance[visible].max() / stride <= 1.0, distance[visible].max() / stride


def test_ae_encode_tags_carry_the_person_index_at_its_joints():
  config = _ae_config()
  truth = np.array([[[10.0, 10.0, 2.0]] * 17, [[70.0, 50.0, 2.0]] * 17], np.float32)
  maps = ae.encode(config, truth, (128, 128))
  u = lambda x: int(round((x + 0.5) / 4 - 0.5))                           # noqa: E731
  np.testing.assert_array_equal(maps['tags'][u(10.0), u(10.0)], 0.0)
  np.testing.assert_array_equal(maps['tags'][u(50.0), u(70.0)], 1.0)
  assert maps['heatmaps'].max() == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize('method, config', [(shg.METHOD, _shg_config()),
                                            (ae.METHOD, _ae_config())])
def test_encode_has_the_names_and_layout_of_one_stage_of_outputs(method, config):
  size = config.dataset.image_size
  h = size // config.dataset.heatmap_stride
  truth = _people(np.random.default_rng(0), 2, config.dataset.num_joints, (size, size))
  encoded = method.encode(config, truth, (size, size))
  outputs = np.zeros((h, h, config.model.num_outputs), np.float32)
  split = method.split_outputs(config, outputs)
  assert {k: v.shape for k, v in encoded.items()} == {k: v.shape for k, v in split.items()}
  # Concatenated in channel order, the encoded maps are a network output the method decodes to
  # the same people as the maps themselves.
  stage = np.concatenate([encoded[k] for k in split], axis=-1)
  people_a, scores_a = method.decode(config, method.split_outputs(config, stage), (size, size))
  people_b, scores_b = method.decode(config, encoded, (size, size))
  np.testing.assert_array_equal(people_a, people_b)
  np.testing.assert_array_equal(scores_a, scores_b)


@pytest.mark.parametrize('method, config', [(shg.METHOD, _shg_config()),
                                            (ae.METHOD, _ae_config())])
def test_device_targets_equal_host_encoding(method, config):
  size = config.dataset.image_size
  truth = _people(np.random.default_rng(1), 2, config.dataset.num_joints, (size, size), 0.8)
  targets = method.render_targets({'keypoints': jnp.asarray(truth[None])},
                                  method.settings(config))
  encoded = method.encode(config, truth, (size, size))
  np.testing.assert_allclose(np.asarray(targets['heatmaps'][0]), encoded['heatmaps'], atol=1e-6)


def test_api_parse_heatmaps_takes_the_official_layouts():
  config = _ae_config()
  truth = _people(np.random.default_rng(2), 3, 17, (128, 128))
  maps = ae.encode(config, truth, (128, 128))
  heat = np.moveaxis(maps['heatmaps'], -1, 0)                             # [K, H, W]
  tags = np.moveaxis(maps['tags'], -1, 0)[..., None]                      # [K, H, W, 1]
  people, scores = api.parse_heatmaps(heat, tags, 'ae')    # the reference parser (defaults)
  grid, grid_scores = ae.group(config, {'heatmaps': maps['heatmaps'],
                                        'tags': maps['tags'][..., None]})
  np.testing.assert_array_equal(people, grid)
  np.testing.assert_array_equal(scores, grid_scores)
  assert len(people) == 3
  one, _ = api.parse_heatmaps(heat[:16], None, 'shg')
  assert one.shape == (1, 16, 3)
  with pytest.raises(ValueError, match="model kind 'pose' is not one of 'shg', 'ae'"):
    api.parse_heatmaps(heat, tags, 'pose')


def test_method_table_entries_are_complete():
  fields = [f.name for f in dataclasses.fields(base.Method)]
  for kind, method in methods.METHODS.items():
    assert method.name == kind
    for name in fields:
      if name not in ('name', 'multi_person', 'target_stride', 'official'):
        assert callable(getattr(method, name)), (kind, name)
    assert method.target_stride in (4, 8), kind
  config = _ae_config()
  assert methods.method_for(config) is ae.METHOD
  config.model.kind = 'pose'
  with pytest.raises(ValueError, match=r"config.model.kind='pose' is not one of 'shg', 'ae'"):
    methods.method_for(config)


def test_parameter_trees_unchanged_since_before_the_method_interface():
  """Checkpoints written before the methods refactor still restore: the parameter trees (names
  and shapes) of four experiments equal those the code of commit 5bf3412 built
  (tests/data/param_trees_5bf3412.json, written by that commit's `models.build_model`)."""
  recorded = json.loads((Path(__file__).parent / 'data' / 'param_trees_5bf3412.json').read_text())
  assert set(recorded) == {'tiny', 'synthetic_ae', 'coco_ae', 'mpii_2stack'}
  for name, tree in recorded.items():
    config = api.load_config(f'experiments.{name}')
    model = api.build_model(config)
    size = config.dataset.image_size
    shapes = jax.eval_shape(lambda m=model, s=size: m.init(
        jax.random.key(0), jnp.zeros((1, s, s, 3)), train=False))
    flat = traverse_util.flatten_dict(shapes, sep='/')
    assert {k: list(v.shape) for k, v in flat.items()} == tree, name
