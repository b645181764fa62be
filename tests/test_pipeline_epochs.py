"""The training iterator over epochs, on small MPII and COCO datasets built from the real
fixtures: the same stored example gets a different augmentation in every epoch, a restored
iterator state replays the exact batches, and the per-process blocks assemble into the
single-process global batch."""

import json
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import coco_ae
from hgjax import defaults
from hgjax import skeleton
from hgjax.datasets import build
from hgjax.datasets import mpii_pipeline
from hgjax.datasets import pipeline

MPII_DIR = 'mmpose/tests/data/mpii'
OCHUMAN_DIR = 'mmpose/tests/data/ochuman'


@pytest.fixture(scope='module')
def mpii_out(tmp_path_factory, shared_data):
  """hgjax_mpii with the 3 fixture persons as its train split (SimpleBaseline JSON layout)."""
  root = tmp_path_factory.mktemp('mpii_epochs')
  (root / 'manual' / 'images').mkdir(parents=True)
  (root / 'manual' / 'annot').mkdir()
  for p in (shared_data / MPII_DIR).glob('*.jpg'):
    shutil.copy(p, root / 'manual' / 'images' / p.name)
  shutil.copy(shared_data / MPII_DIR / 'test_mpii.shared.json',
              root / 'manual' / 'annot' / 'train.json')
  assert build.main(['mpii', '--manual_dir', str(root / 'manual'), '--data_dir',
                     str(root / 'out'), '--num_workers', '1']) == 0
  return root / 'out'


@pytest.fixture(scope='module')
def coco_out(tmp_path_factory, shared_data):
  """hgjax_coco with the 2 OCHuman fixture images as its train split."""
  root = tmp_path_factory.mktemp('coco_epochs')
  (root / 'manual' / 'annotations').mkdir(parents=True)
  (root / 'manual' / 'train2017').mkdir()
  for p in (shared_data / OCHUMAN_DIR).glob('*.jpg'):
    shutil.copy(p, root / 'manual' / 'train2017' / p.name)
  shutil.copy(shared_data / OCHUMAN_DIR / 'test_ochuman.shared.json',
              root / 'manual' / 'annotations' / 'person_keypoints_train2017.json')
  assert build.main(['coco', '--manual_dir', str(root / 'manual'), '--data_dir',
                     str(root / 'out'), '--num_workers', '1']) == 0
  return root / 'out'


def _mpii_config(out, batch_size):
  c = defaults.get_config()
  c.dataset.data_dir = str(out)
  c.train.batch_size = batch_size
  c.train.num_workers = 2
  c.train.prefetch = 2
  return c


def _coco_config(out, batch_size):
  c = coco_ae.get_config()
  c.dataset.data_dir = str(out)
  c.dataset.image_size = 128
  c.train.batch_size = batch_size
  c.train.num_workers = 2
  c.train.prefetch = 2
  return c


def _config(name, mpii_out, coco_out, batch_size):
  if name == 'mpii':
    return _mpii_config(mpii_out, batch_size)
  return _coco_config(coco_out, batch_size)


def _stream(config, count):
  """The first `count` examples of the single-process training stream, as a list of dicts."""
  it = pipeline.train_iterator(config, 0, 1)
  batch = config.train.batch_size
  examples = []
  while len(examples) < count:
    b = next(it)
    examples += [{k: v[i] for k, v in b.items()} for i in range(batch)]
  return examples[:count]


def _fit_augmentation(out_kp, stored):
  """Identifies which stored person an augmented MPII example is and recovers its map.

  out_kp: [16, 3] augmented keypoints (input pixels); stored: list of [16, 3] keypoints in
  original pixels. The pipeline's output is joint j = A @ stored[perm[j]] with perm the identity
  or the left/right swap (flip). Returns (stored index, A [2, 3]) of the only exact fit.
  """
  fits = []
  for c, kp in enumerate(stored):
    for perm in (np.arange(16), np.asarray(skeleton.flip_for(16))):
      src = np.asarray(kp, np.float64)[perm]
      if not np.array_equal(src[:, 2] > 0, out_kp[:, 2] > 0):
        continue
      vis = src[:, 2] > 0
      design = np.concatenate([src[vis, :2], np.ones((vis.sum(), 1))], axis=1)   # [n, 3]
      a, *_ = np.linalg.lstsq(design, out_kp[vis, :2].astype(np.float64), rcond=None)
      residual = np.abs(design @ a - out_kp[vis, :2]).max()
      if residual < 1e-2:
        fits.append((c, a.T))
  assert len({c for c, _ in fits}) == 1, f'{len(fits)} stored persons fit an output example'
  return fits[0]


def _augmentations_by_person(examples, stored):
  """{stored index: [A [2, 3] of each occurrence, in stream order]}."""
  found = {}
  for ex in examples:
    c, a = _fit_augmentation(ex['keypoints'][0], stored)
    found.setdefault(c, []).append(a)
  return found


def test_mpii_same_person_gets_a_new_augmentation_every_epoch(mpii_out):
  config = _mpii_config(mpii_out, batch_size=2)
  source = tfds.data_source('hgjax_mpii', split='train', data_dir=str(mpii_out))
  stored = [source[i]['keypoints'] for i in range(len(source))]
  assert len(stored) == 3
  epochs = 5
  examples = _stream(config, 3 * epochs)
  found = _augmentations_by_person(examples, stored)
  # Every epoch (3 consecutive stream elements) holds each stored person exactly once.
  for e in range(epochs):
    people = [_fit_augmentation(ex['keypoints'][0], stored)[0]
              for ex in examples[3 * e:3 * e + 3]]
    assert sorted(people) == [0, 1, 2]
  for c, maps in found.items():
    assert len(maps) == epochs
    for i in range(epochs):
      for j in range(i):
        assert np.abs(maps[i] - maps[j]).max() > 1e-2, (c, i, j)
    # The images of one person differ between epochs as well.
    images = [ex['image'] for ex in examples
              if _fit_augmentation(ex['keypoints'][0], stored)[0] == c]
    assert len({im.tobytes() for im in images}) == epochs
  # Control: augmentation keyed by the stored index alone (the failure this test guards
  # against) gives one map per person however many epochs, and the check above sees it.
  keyed_by_person = mpii_pipeline.train_source(config)
  collapsed = _augmentations_by_person([keyed_by_person[g % 3] for g in range(9)], stored)
  for maps in collapsed.values():
    assert len(maps) == 3 and np.abs(maps[0] - maps[1]).max() < 1e-6


def test_coco_same_image_gets_a_new_augmentation_every_epoch(coco_out):
  config = _coco_config(coco_out, batch_size=2)
  source = tfds.data_source('hgjax_coco', split='train', data_dir=str(coco_out))
  assert len(source) == 2
  epochs = 4
  examples = _stream(config, 2 * epochs)
  # With a collapsed augmentation only 2 distinct examples would exist; every one is new here.
  assert len({ex['image'].tobytes() for ex in examples}) == 2 * epochs
  assert len({ex['keypoints'].tobytes() for ex in examples}) == 2 * epochs
  assert len({ex['mask'].tobytes() for ex in examples}) > 2


@pytest.mark.parametrize('name', ['mpii', 'coco'])
def test_restored_iterator_replays_the_exact_batches(name, mpii_out, coco_out):
  config = _config(name, mpii_out, coco_out, batch_size=2)
  it = pipeline.train_iterator(config, 0, 1)
  for _ in range(3):   # 6 examples: past the first epoch boundary of both datasets
    next(it)
  # The checkpoint stores the state as JSON (orbax's grain handler).
  state = json.loads(json.dumps(it.get_state()))
  expected = [next(it) for _ in range(4)]
  # A fresh iterator, as a resumed process builds it, reads something else until restored.
  fresh = pipeline.train_iterator(config, 0, 1)
  first = next(fresh)
  assert not np.array_equal(first['image'], expected[0]['image'])
  fresh.set_state(state)
  for want in expected:
    got = next(fresh)
    assert got.keys() == want.keys()
    for key in want:
      assert got[key].dtype == want[key].dtype
      np.testing.assert_array_equal(got[key], want[key])


@pytest.mark.parametrize('name', ['mpii', 'coco'])
def test_process_blocks_assemble_into_the_single_process_batch(name, mpii_out, coco_out):
  config = _config(name, mpii_out, coco_out, batch_size=4)
  single = pipeline.train_iterator(config, 0, 1)
  blocks = [pipeline.train_iterator(config, p, 2) for p in range(2)]
  for _ in range(3):   # 12 examples: several epochs of both datasets
    want = next(single)
    parts = [next(b) for b in blocks]
    for key in want:
      assert parts[0][key].shape[0] == 2
      np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), want[key])
