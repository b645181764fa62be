"""COCO: the builder on the real fixtures (COCO val2017 + OCHuman in the COCO layout), the
ignore mask against pycocotools' annToMask, the training pipeline, and bad input."""

import copy
import json
import shutil

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds
from pycocotools.coco import COCO

from hgjax import defaults
from hgjax import transforms
from hgjax.datasets import augment
from hgjax.datasets import build
from hgjax.datasets import coco_pipeline
from hgjax.datasets import scenes_pipeline
from hgjax.datasets import synthetic
from hgjax.evaluation import coco_eval

COCO_DIR = 'mmpose/tests/data/coco'
OCHUMAN_DIR = 'mmpose/tests/data/ochuman'


def _load(shared_data, rel):
  with open(shared_data / rel) as f:
    return json.load(f)


def _annotations(shared_data):
  """(val json, train json): COCO val fixtures plus an image with no people; OCHuman with one
  person turned into a crowd region, an image with no people and an image with 35 people."""
  val = _load(shared_data, f'{COCO_DIR}/test_coco.shared.json')
  val['images'].append(dict(val['images'][0], id=999))   # no people: kept in validation
  train = _load(shared_data, f'{OCHUMAN_DIR}/test_ochuman.shared.json')
  train['annotations'][2]['iscrowd'] = 1                 # an RLE crowd region
  train['images'].append(dict(train['images'][0], id=50))   # no people: left out of train
  train['images'].append(dict(train['images'][0], id=60))
  base = train['annotations'][0]
  rng = np.random.default_rng(0)
  for n in range(35):
    kp = np.array(base['keypoints'], float).reshape(17, 3)
    kp[:, :2] += rng.uniform(-100, 100, 2) * (kp[:, 2:] > 0)
    train['annotations'].append(dict(base, id=1000 + n, image_id=60,
                                     keypoints=kp.ravel().tolist()))
  return val, train


def _layout(root, shared_data, val, train):
  (root / 'annotations').mkdir(parents=True)
  for folder, src, data in (('val2017', COCO_DIR, val), ('train2017', OCHUMAN_DIR, train)):
    (root / folder).mkdir()
    for p in (shared_data / src).glob('*.jpg'):
      shutil.copy(p, root / folder / p.name)
    if data is not None:
      (root / 'annotations' / f'person_keypoints_{folder}.json').write_text(json.dumps(data))
  return root


def _build(manual, out, *flags):
  return build.main(['coco', '--manual_dir', str(manual), '--data_dir', str(out),
                     '--num_workers', '1', *flags])


def _read(out, split):
  ds = tfds.data_source('hgjax_coco', split=split, data_dir=str(out))
  return [ds[i] for i in range(len(ds))]


@pytest.fixture(scope='module')
def built(tmp_path_factory, shared_data):
  root = tmp_path_factory.mktemp('coco')
  val, train = _annotations(shared_data)
  manual = _layout(root / 'manual', shared_data, val, train)
  assert _build(manual, root / 'out') == 0
  return root / 'out', manual, val, train


def _expected_ignore(coco_api, image_id):
  mask = None
  for ann in coco_api.loadAnns(coco_api.getAnnIds(imgIds=[image_id], iscrowd=None)):
    if ann['iscrowd'] or ann['num_keypoints'] == 0:
      m = coco_api.annToMask(ann)
      mask = m if mask is None else np.maximum(mask, m)
  return mask


def test_every_annotation_is_stored_as_in_the_json(built, capsys):
  out, manual, val, train = built
  for split, data, folder in (('validation', val, 'val2017'), ('train', train, 'train2017')):
    api = COCO(str(manual / 'annotations' / f'person_keypoints_{folder}.json'))
    examples = _read(out, split)
    images = [im for im in data['images'] if split == 'validation' or api.getAnnIds(
        imgIds=[im['id']], iscrowd=None)]
    assert [int(e['image_id']) for e in examples] == [im['id'] for im in images]
    total = 0
    for ex, im in zip(examples, images, strict=True):
      anns = [a for a in data['annotations'] if a['image_id'] == im['id']]
      total += len(anns)
      assert ex['image_filename'].decode() == im['file_name']
      assert ex['image'] == (manual / folder / im['file_name']).read_bytes()
      np.testing.assert_array_equal(ex['original_shape'], [im['height'], im['width']])
      assert ex['people/keypoints'].shape == (len(anns), 17, 3)
      for k, a in enumerate(anns):
        np.testing.assert_allclose(ex['people/keypoints'][k],
                                   np.reshape(a['keypoints'], (17, 3)), rtol=1e-6)
        np.testing.assert_allclose(ex['people/bbox'][k], a['bbox'], rtol=1e-6)
        np.testing.assert_allclose(ex['people/area'][k], a['area'], rtol=1e-6)
        assert ex['people/iscrowd'][k] == a['iscrowd']
        assert ex['people/num_keypoints'][k] == a['num_keypoints']
        assert ex['people/id'][k] == a['id']
      expected = _expected_ignore(api, im['id'])
      if expected is None:
        assert ex['ignore_mask'] == b''
      else:
        stored = cv2.imdecode(np.frombuffer(ex['ignore_mask'], np.uint8), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(stored, expected)
        assert expected.sum() > 100
    assert total == len(data['annotations'])
  ids = {int(e['image_id']): e for e in _read(out, 'validation')}
  assert len(ids[40083]['ignore_mask']) > 0 and ids[785]['ignore_mask'] == b''   # 0-kp person
  assert len(ids[999]['people/keypoints']) == 0
  train_ids = [int(e['image_id']) for e in _read(out, 'train')]
  assert 50 not in train_ids and 60 in train_ids
  assert len(_read(out, 'train')[1]['ignore_mask']) > 0   # the crowd region


def test_build_reports_left_out_and_crowded_images(tmp_path, shared_data, capsys):
  val, train = _annotations(shared_data)
  _build(_layout(tmp_path / 'm', shared_data, None, train), tmp_path / 'out')
  out = capsys.readouterr().out
  assert 'train: 3, ' not in out and 'hgjax_coco written to' in out and '(train: 3)' in out
  assert 'note: 1 x train2017: images without people left out' in out
  assert 'note: 1 x train2017: images with more than 30 people' in out


def _config(out, **augment_values):
  c = defaults.get_config()
  c.dataset.name = 'coco'
  c.dataset.data_dir = str(out)
  c.dataset.num_joints = 17
  c.dataset.image_size = 256
  c.dataset.max_people = 30
  c.targets.sigma = 2.0
  c.augment.update(augment_values)
  return c


NO_AUGMENT = dict(scale_min=1.0, scale_max=1.0, rotation=0.0, translate=0.0, flip=False,
                  color_jitter=0.0)


def test_pipeline_without_augmentation_is_the_whole_image(built):
  out, manual, val, _ = built
  config = _config(out, **NO_AUGMENT)
  config.dataset.image_size = 512
  config.dataset.train_split = 'validation'
  ds = coco_pipeline.train_source(config)
  api = COCO(str(manual / 'annotations' / 'person_keypoints_val2017.json'))
  for i, im in enumerate(val['images']):
    ex = ds[i]
    w, h = im['width'], im['height']
    m = transforms.crop_transform(((w - 1) / 2, (h - 1) / 2), max(w, h) / 200, 0.0, (512, 512))
    original = cv2.imread(str(manual / 'val2017' / im['file_name']))[..., ::-1]
    np.testing.assert_array_equal(ex['image'], augment.warp_image(original, m, (512, 512)))
    anns = [a for a in val['annotations'] if a['image_id'] == im['id'] and a['num_keypoints']]
    assert ex['keypoints'].shape == (30, 17, 3) and ex['mask'].shape == (128, 128)
    assert not ex['keypoints'][len(anns):].any()
    for k, a in enumerate(anns):
      kp = np.reshape(a['keypoints'], (17, 3)).astype(np.float64)
      np.testing.assert_allclose(ex['keypoints'][k, :, :2], transforms.apply_affine(kp[:, :2], m),
                                 atol=1e-3)
      np.testing.assert_array_equal(ex['keypoints'][k, :, 2], kp[:, 2])
    # Mask cells: 0 outside the image and on ignored people, 1 elsewhere (away from edges).
    ignore = _expected_ignore(api, im['id'])
    ignore = np.zeros((h, w), np.uint8) if ignore is None else ignore
    to_src = transforms.invert_affine(augment.compose(augment.grid_matrix(4), m))
    cy, cx = np.mgrid[:128, :128]
    src = transforms.apply_affine(np.stack([cx, cy], -1), to_src)   # cell centres in the source
    inside = (src[..., 0] > 4) & (src[..., 0] < w - 5) & (src[..., 1] > 4) & (src[..., 1] < h - 5)
    outside = (src[..., 0] < -4) | (src[..., 0] > w + 3) | (src[..., 1] < -4) | \
        (src[..., 1] > h + 3)
    assert np.all(ex['mask'][outside] == 0) and outside.sum() > 0
    xi = np.clip(np.round(src[..., 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(src[..., 1]).astype(int), 0, h - 1)
    solid = inside & (cv2.erode(ignore, np.ones((5, 5)))[yi, xi] == 1)
    clear = inside & (cv2.dilate(ignore, np.ones((5, 5)))[yi, xi] == 0)
    assert np.all(ex['mask'][solid] == 0) and np.all(ex['mask'][clear] == 1)
    assert solid.any() == (im['id'] == 40083)


def test_pipeline_truncates_to_max_people_and_unsupervises_the_rest(built):
  out, _, train, = built[0], built[1], built[3]
  config = _config(out, **NO_AUGMENT)
  ds = coco_pipeline.train_source(config)
  ex = ds[2]   # image 60: 35 people
  assert int((ex['keypoints'][..., 2] > 0).any(-1).sum()) == 30
  crowd = [a for a in train['annotations'] if a['image_id'] == 60]
  w, h = train['images'][0]['width'], train['images'][0]['height']
  m = transforms.crop_transform(((w - 1) / 2, (h - 1) / 2), max(w, h) / 200, 0.0, (256, 256))
  to_grid = augment.compose(augment.grid_matrix(4), m)
  for k, a in enumerate(crowd[:30]):
    kp = np.reshape(a['keypoints'], (17, 3)).astype(np.float64)
    np.testing.assert_allclose(ex['keypoints'][k, :, :2], transforms.apply_affine(kp[:, :2], m),
                               atol=1e-3)
  for a in crowd[30:]:
    kp = np.reshape(a['keypoints'], (17, 3))
    for x, y in transforms.apply_affine(kp[kp[:, 2] > 0, :2], to_grid):
      if 0 <= x < 64 and 0 <= y < 64:
        assert ex['mask'][int(round(y)), int(round(x))] == 0


def test_pipeline_is_deterministic_per_index_and_augments(built):
  out = built[0]
  config = _config(out, scale_max=1.5, translate=40.0)
  a, b = coco_pipeline.train_source(config), coco_pipeline.train_source(config)
  for i in (0, 1, 3):
    for key in ('image', 'keypoints', 'mask'):
      np.testing.assert_array_equal(a[i][key], b[i][key])
  assert not np.array_equal(a[0]['keypoints'], a[3]['keypoints'])   # same image, next epoch
  assert a[0]['mask'].dtype == np.float32 and set(np.unique(a[0]['mask'])) <= {0.0, 1.0}


def test_synthetic_scenes_source_layout():
  c = defaults.get_config()
  c.dataset.name = 'synthetic_scenes'
  c.dataset.image_size = 64
  c.dataset.max_people = 4
  c.dataset.synthetic_num_train = 10
  ds = scenes_pipeline.train_source(c)
  ex = ds[3]
  ref = synthetic.scene_example(c.seed, 'train', 3, 64, 4, scenes_pipeline.scene_heights(c))
  np.testing.assert_array_equal(ex['image'], ref['image'])
  np.testing.assert_array_equal(ex['keypoints'][:len(ref['keypoints'])], ref['keypoints'])
  assert ex['keypoints'].shape == (4, 17, 3) and ex['mask'].shape == (16, 16)
  assert np.all(ex['mask'] == 1) and len(ds) == 10


# ------------------------------------------------------------------------------------------
# Bad input: one bad image (its own file and annotation) next to the good ones.


def _bad_case(kind, val, root):
  val = copy.deepcopy(val)
  image = dict(val['images'][0], id=777, file_name='bad.jpg')
  ann = dict(val['annotations'][0], id=9999, image_id=777)
  data = (root / 'val2017' / val['images'][0]['file_name']).read_bytes()
  kp = list(ann['keypoints'])
  if kind == 'corrupt':
    data = b'\xff\xd8 not really a jpeg' * 40
  elif kind == 'truncated':
    data = data[:len(data) * 2 // 3]
  elif kind == 'missing':
    data = None
  elif kind == 'joints':
    kp = kp[:48]
  elif kind == 'nan':
    kp[3 * 5] = float('nan')
  elif kind == 'negative':
    kp[3 * 5], kp[3 * 5 + 2] = -5000.0, 2
  elif kind == 'size':
    image['width'] = 641
  ann['keypoints'] = kp
  if data is not None:
    (root / 'val2017' / 'bad.jpg').write_bytes(data)
  val['images'].insert(1, image)
  val['annotations'].append(ann)
  (root / 'annotations' / 'person_keypoints_val2017.json').write_text(json.dumps(val))


BAD_CASES = {
    'corrupt': ['corrupt or truncated image file', 'bad.jpg', 'image 777'],
    'truncated': ['corrupt or truncated image file', 'bad.jpg', 'truncated'],
    'missing': ['image file not found', 'bad.jpg', "field 'file_name'"],
    'joints': ['image 777', 'annotation 9999', "field 'keypoints'", 'has 48 values, expected 51'],
    'nan': ['annotation 9999', "field 'keypoints'", 'nan', 'not finite'],
    'negative': ['annotation 9999', "field 'keypoints' joint 5", '-5000.0', 'is negative',
                 'far outside the 640x425 image'],
    'size': ['image 777', "'width', 'height'", 'values 641, 425', '640x425'],
}


@pytest.mark.parametrize('kind', sorted(BAD_CASES))
def test_bad_example_error_names_file_field_value(tmp_path, shared_data, kind):
  val, _ = _annotations(shared_data)
  manual = _layout(tmp_path / 'm', shared_data, val, None)
  _bad_case(kind, val, manual)
  with pytest.raises(ValueError) as info:
    _build(manual, tmp_path / 'out')
  for text in BAD_CASES[kind]:
    assert text in str(info.value), (text, str(info.value))


@pytest.mark.parametrize('kind', sorted(BAD_CASES))
def test_bad_example_skip_counts_and_keeps_the_good(tmp_path, shared_data, kind, capsys):
  val, _ = _annotations(shared_data)
  manual = _layout(tmp_path / 'm', shared_data, val, None)
  _bad_case(kind, val, manual)
  assert _build(manual, tmp_path / 'out', '--on_bad_example', 'skip') == 0
  report = capsys.readouterr().out
  assert 'skipped 1 bad examples' in report and BAD_CASES[kind][1] in report
  examples = _read(tmp_path / 'out', 'validation')
  assert [int(e['image_id']) for e in examples] == [im['id'] for im in val['images']]
  assert sum(len(e['people/id']) for e in examples) == len(val['annotations'])


def test_malformed_json_names_the_file(tmp_path, shared_data):
  val, _ = _annotations(shared_data)
  manual = _layout(tmp_path / 'm', shared_data, val, None)
  path = manual / 'annotations' / 'person_keypoints_val2017.json'
  path.write_text(path.read_text()[:-100])
  with pytest.raises(ValueError, match=r'malformed JSON in .*person_keypoints_val2017\.json'):
    _build(manual, tmp_path / 'out', '--on_bad_example', 'skip')


def test_eval_data_is_the_validation_json_scored_by_pycocotools(built):
  """`coco_pipeline.eval_data`: the stored validation images decoded, their ids, and a ground
  truth equal to the JSON's annotations; the GT keypoints as results score AP 1."""
  out, manual, val, _ = built
  config = _config(out)
  images, ids, gt = coco_pipeline.eval_data(config)
  assert sorted(ids.tolist()) == sorted(im['id'] for im in val['images'])
  assert len(images) == len(ids)
  for i, image_id in enumerate(ids):
    info = next(im for im in val['images'] if im['id'] == image_id)
    assert images[i].shape == (info['height'], info['width'], 3)
  stored = sorted((a['id'], a['image_id'], a['iscrowd'], a['num_keypoints'],
                   tuple(a['keypoints'])) for a in gt['annotations'])
  expected = sorted((a['id'], a['image_id'], a['iscrowd'], a['num_keypoints'],
                     tuple(a['keypoints'])) for a in val['annotations'])
  assert stored == expected
  people = [a for a in gt['annotations'] if a['num_keypoints'] > 0 and not a['iscrowd']]
  results = [{'image_id': a['image_id'], 'category_id': 1, 'keypoints': a['keypoints'],
              'score': 1.0} for a in people]
  assert coco_eval.coco_keypoint_eval(gt, results)['AP'] == 1.0
  config.eval.num_examples = 2
  images, ids, gt = coco_pipeline.eval_data(config)
  assert len(images) == len(ids) == 2 and len(gt['images']) == 2
