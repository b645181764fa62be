"""MPII: both annotation layouts built from the real fixtures, the annolist reader against
detections_our_format.mat, pre-crop geometry, the pipelines, and bad input."""

import json
import shutil

import cv2
import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds

from hgjax import defaults
from hgjax import transforms
from hgjax.datasets import build
from hgjax.datasets import mpii
from hgjax.datasets import mpii_pipeline

FIXTURE = 'mmpose/tests/data/mpii'
EVAL_DATA = 'mpii_eval/pytorch-pose/evaluation/data'


@pytest.fixture(scope='module')
def records(shared_data):
  with open(shared_data / FIXTURE / 'test_mpii.shared.json') as f:
    return json.load(f)


@pytest.fixture(scope='module')
def our_format(shared_data):
  """detections_our_format.mat: the same fields as gt_valid.mat for the 2958 persons."""
  return scipy.io.loadmat(str(shared_data / EVAL_DATA / 'detections_our_format.mat'))


@pytest.fixture(scope='module')
def detections(shared_data):
  """detections.mat: the 2958 persons in the official annolist structure."""
  return scipy.io.loadmat(str(shared_data / EVAL_DATA / 'detections.mat'),
                          struct_as_record=False, squeeze_me=True)


def _gt_valid(our_format, persons):
  return {k: our_format[k][..., persons] for k in ('jnt_missing', 'pos_gt_src', 'headboxes_src')}


def _json_layout(root, shared_data, train, valid, gt):
  """Writes the SimpleBaseline/HRNet layout (images/, annot/*.json, annot/gt_valid.mat)."""
  (root / 'images').mkdir(parents=True)
  (root / 'annot').mkdir()
  for p in (shared_data / FIXTURE).glob('*.jpg'):
    shutil.copy(p, root / 'images' / p.name)
  for name, recs in (('train.json', train), ('valid.json', valid)):
    if recs is not None:
      (root / 'annot' / name).write_text(json.dumps(recs))
  if gt is not None:
    scipy.io.savemat(str(root / 'annot' / 'gt_valid.mat'), gt)
  return root


def _build(manual, out, *flags):
  return build.main(['mpii', '--manual_dir', str(manual), '--data_dir', str(out),
                     '--num_workers', '1', *flags])


def _read(out, split):
  ds = tfds.data_source('hgjax_mpii', split=split, data_dir=str(out))
  return [ds[i] for i in range(len(ds))]


def _expected_keypoints(rec):
  kp = np.zeros((16, 3), np.float32)
  for j, ((x, y), v) in enumerate(zip(rec['joints'], rec['joints_vis'], strict=True)):
    if v:
      kp[j] = (x - 1, y - 1, 1)
  return kp


@pytest.fixture(scope='module')
def json_build(tmp_path_factory, shared_data, records, our_format):
  root = tmp_path_factory.mktemp('mpii_json')
  # The three fixture persons are validation persons 0, 1, 2 of gt_valid.mat, in this order.
  manual = _json_layout(root / 'manual', shared_data, records, records,
                        _gt_valid(our_format, [0, 1, 2]))
  assert _build(manual, root / 'out') == 0
  return root / 'out'


def test_json_layout_stores_every_annotation(json_build, records, our_format, shared_data):
  for split in ('train', 'validation'):
    examples = _read(json_build, split)
    assert len(examples) == len(records) == 3
    for i, (ex, rec) in enumerate(zip(examples, records, strict=True)):
      assert ex['image_filename'].decode() == rec['image']
      assert int(ex['person_index']) == i
      np.testing.assert_array_equal(ex['keypoints'], _expected_keypoints(rec))
      np.testing.assert_allclose(ex['center'], np.array(rec['center']) - 1, atol=1e-4)
      np.testing.assert_allclose(ex['scale'], rec['scale'], rtol=1e-6)
      h, w = cv2.imread(str(shared_data / FIXTURE / rec['image'])).shape[:2]
      np.testing.assert_array_equal(ex['original_shape'], [h, w])
      np.testing.assert_array_equal(ex['release_index'], [-1, -1])
      if split == 'validation':
        assert ex['has_head_box']
        np.testing.assert_allclose(ex['head_box'], our_format['headboxes_src'][..., i] - 1,
                                   atol=1e-4)
      else:
        assert not ex['has_head_box']
  labelled = sum(int((e['keypoints'][:, 2] > 0).sum()) for e in _read(json_build, 'train'))
  assert labelled == sum(sum(r['joints_vis']) for r in records) == 46


def test_stored_crop_is_the_original_image_through_crop_transform(json_build, shared_data):
  for ex in _read(json_build, 'validation'):
    original = cv2.imread(str(shared_data / FIXTURE / ex['image_filename'].decode()))[..., ::-1]
    stored = cv2.imdecode(np.frombuffer(ex['image'], np.uint8), cv2.IMREAD_COLOR_RGB)
    size, m = stored.shape[1::-1], ex['crop_transform']
    # Reference: the original, low-passed for the zoom, warped by crop_transform; both sides
    # blurred a little more so JPEG noise and resampling differences do not count.
    source = cv2.GaussianBlur(original.astype(np.float32), (0, 0), 0.5 / m[0, 0])
    errors = []
    for shift in (0.0, 0.5):   # the stored transform, and half a stored pixel off
      mm = m.copy()
      mm[:, 2] += shift
      diff = stored.astype(np.float32) - cv2.warpAffine(source, mm, size)
      errors.append(np.abs(cv2.GaussianBlur(diff, (0, 0), 1.5)).mean())
    assert errors[0] < 0.4 * errors[1], errors   # measured ratio ~0.2
    # The crop holds the hourglass box around the person.
    center, scale = mpii.hourglass_box(ex['center'], float(ex['scale']))
    c = transforms.apply_affine(center, m)
    assert 0 <= c[0] < size[0] and 0 <= c[1] < size[1]


@pytest.mark.parametrize('pixels', [0, 100])
def test_crop_region_keeps_dots_on_their_mapped_position(pixels):
  ys, xs = np.mgrid[:400, :600].astype(np.float64)
  points = np.array([[250.3, 180.7], [330.8, 240.2], [290.0, 130.4]])
  img = sum(np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 4.0 ** 2)) for x, y in points)
  image = np.repeat((img * 250).astype(np.uint8)[..., None], 3, axis=2)
  crop, m = mpii.crop_region(image, (290.0, 190.0), 0.8, 1.75, pixels)
  assert max(crop.shape[:2]) <= (0.8 * 200 * 1.75 + 2 if pixels == 0 else 100 * 1.75 + 2)
  gray = crop[..., 0].astype(np.float64)
  cy, cx = np.mgrid[:gray.shape[0], :gray.shape[1]]
  for p in transforms.apply_affine(points, m):
    w = gray * (((cx - p[0]) ** 2 + (cy - p[1]) ** 2) <= 6 ** 2)
    centroid = [(w * cx).sum() / w.sum(), (w * cy).sum() / w.sum()]
    np.testing.assert_allclose(centroid, p, atol=0.1)


def test_annolist_structure_matches_detections_our_format(detections, our_format):
  m = detections
  people = list(mpii.iter_annolist(m['annolist']))
  assert len(people) == 2958 and all(j == 0 for _, j, _ in people)
  zeroed_joints, zeroed_people = 0, 0
  for i, _, rect in people:
    kp = mpii.annorect_keypoints(rect, f'person {i}')
    missing = our_format['jnt_missing'][:, i] == 1
    np.testing.assert_array_equal(kp[:, 2] == 0, missing)
    gt = our_format['pos_gt_src'][~missing, :, i] - 1
    # detections_our_format (like gt_valid.mat) has 13 labelled joints of 10 persons with a
    # coordinate set to 0 (1-based) where the annolist has the real value; the rest agrees.
    differ = np.abs(kp[~missing, :2] - gt) > 1e-3
    assert np.all(gt[differ] == -1)
    zeroed_joints += differ.any(axis=1).sum()
    zeroed_people += differ.any()
    np.testing.assert_allclose(mpii.annorect_head_box(rect, f'person {i}'),
                               our_format['headboxes_src'][..., i] - 1, atol=1e-3)
  # is_visible: 1 -> v = 2; 0 or not recorded -> v = 1 (person 2 has 0 at both wrists' arm).
  kp2 = mpii.annorect_keypoints(people[2][2], 'person 2')
  np.testing.assert_array_equal(kp2[[10, 11, 8, 9, 12], 2], [1, 1, 1, 1, 2])
  assert len(m['RELEASE_img_index']) == 2958
  assert (zeroed_joints, zeroed_people) == (13, 10)


def _struct_array(dicts):
  """list of dicts -> a MATLAB struct array for scipy.io.savemat."""
  keys = list(dicts[0])
  arr = np.zeros((1, len(dicts)), dtype=[(k, 'O') for k in keys])
  for i, d in enumerate(dicts):
    for k in keys:
      arr[0, i][k] = d[k]
  return arr


def _rect_dict(rect, with_points=True):
  """A detections.mat annorect -> the official release's annorect fields."""
  d = {k: getattr(rect, k) for k in ('x1', 'y1', 'x2', 'y2', 'scale')}
  d['objpos'] = {'x': rect.objpos.x, 'y': rect.objpos.y}
  points = [{'id': p.id, 'x': p.x, 'y': p.y, 'is_visible': p.is_visible}
            for p in np.atleast_1d(rect.annopoints.point)]
  d['annopoints'] = {'point': _struct_array(points)} if with_points else np.zeros((0, 0))
  return d


@pytest.mark.parametrize('with_release_index', [False, True])
def test_release_layout(tmp_path, shared_data, our_format, detections, with_release_index,
                        capsys):
  det = detections['annolist']
  # Image order differs from the gt_valid order; image 2 has a person without joints first;
  # image 3 adds a training person and one without objpos/scale (left out, noted); image 4 is
  # a test image (img_train = 0).
  images = [('052475643.jpg', [_rect_dict(det[1].annorect)]),
            ('005808361.jpg', [_rect_dict(det[100].annorect, False), _rect_dict(det[0].annorect)]),
            ('051423444.jpg', [_rect_dict(det[2].annorect), _rect_dict(det[100].annorect),
                               dict(_rect_dict(det[5].annorect), objpos=np.zeros((0, 0)),
                                    scale=np.zeros((0, 0)))]),
            ('052475643.jpg', [_rect_dict(det[3].annorect)])]
  annolist = _struct_array([{'image': {'name': name}, 'annorect': _struct_array(rects)}
                            for name, rects in images])
  manual = tmp_path / 'manual'
  (manual / 'images').mkdir(parents=True)
  for p in (shared_data / FIXTURE).glob('*.jpg'):
    shutil.copy(p, manual / 'images' / p.name)
  scipy.io.savemat(str(manual / mpii.RELEASE_FILE), {'RELEASE': {
      'annolist': annolist, 'img_train': np.array([[1, 1, 1, 0]]),
      'single_person': np.zeros((4, 1), object), 'act': np.zeros((4, 1), object)}})
  gt = _gt_valid(our_format, [0, 1, 2])
  if with_release_index:
    gt['RELEASE_img_index'] = np.array([[2, 1, 3]])
    gt['RELEASE_person_index'] = np.array([[2, 1, 1]])
  scipy.io.savemat(str(manual / 'gt_valid.mat'), gt)
  assert _build(manual, tmp_path / 'out') == 0
  assert 'note: 1 x annotated persons without objpos/scale left out' in capsys.readouterr().out

  valid = _read(tmp_path / 'out', 'validation')
  assert [e['image_filename'].decode() for e in valid] == [
      '005808361.jpg', '052475643.jpg', '051423444.jpg']
  assert [e['release_index'].tolist() for e in valid] == [[2, 2], [1, 1], [3, 1]]
  for i, ex in enumerate(valid):
    missing = our_format['jnt_missing'][:, i] == 1
    np.testing.assert_array_equal(ex['keypoints'][:, 2] == 0, missing)
    np.testing.assert_allclose(ex['keypoints'][~missing, :2],
                               our_format['pos_gt_src'][~missing, :, i] - 1, atol=1e-3)
    np.testing.assert_allclose(ex['head_box'], our_format['headboxes_src'][..., i] - 1,
                               atol=1e-3)
    rect = det[i].annorect
    np.testing.assert_allclose(ex['center'], [rect.objpos.x - 1, rect.objpos.y - 1], atol=1e-4)
    np.testing.assert_allclose(ex['scale'], rect.scale, rtol=1e-6)
    assert int(ex['person_index']) == i
  np.testing.assert_array_equal(valid[2]['keypoints'][[10, 11, 12], 2], [1, 1, 2])
  train = _read(tmp_path / 'out', 'train')
  assert len(train) == 1 and train[0]['release_index'].tolist() == [3, 2]
  np.testing.assert_allclose(train[0]['head_box'], our_format['headboxes_src'][..., 100] - 1,
                             atol=1e-3)
  m100 = our_format['jnt_missing'][:, 100] == 1
  np.testing.assert_allclose(train[0]['keypoints'][~m100, :2],
                             our_format['pos_gt_src'][~m100, :, 100] - 1, atol=1e-3)


def _config(out, **augment):
  c = defaults.get_config()
  c.dataset.data_dir = str(out)
  c.augment.update(augment)
  return c


def test_eval_data_crops_and_ground_truth(json_build, records, our_format, shared_data):
  images, crop_to_image, keypoints, head_boxes = mpii_pipeline.eval_data(_config(json_build))
  assert images.shape == (3, 256, 256, 3) and images.dtype == np.uint8
  assert crop_to_image.shape == (3, 2, 3)
  np.testing.assert_array_equal(keypoints, np.stack([_expected_keypoints(r) for r in records]))
  np.testing.assert_allclose(head_boxes, our_format['headboxes_src'][..., :3].transpose(2, 0, 1)
                             - 1, atol=1e-4)
  for i, rec in enumerate(records):
    # The hourglass box: centre moved down 15 * scale, side 1.25 * scale * 200 px.
    c = np.array(rec['center']) - 1 + [0, 15 * rec['scale']]
    side = 1.25 * rec['scale'] * 200
    np.testing.assert_allclose(transforms.apply_affine([[127.5, 127.5], [-0.5, -0.5]],
                                                       crop_to_image[i]),
                               [c, c - side / 2], atol=1e-3)
    # The image equals a direct crop of the original (up to the pre-crop's resampling).
    original = cv2.imread(str(shared_data / FIXTURE / rec['image']))[..., ::-1]
    direct = cv2.warpAffine(original, transforms.invert_affine(crop_to_image[i]), (256, 256),
                            flags=cv2.INTER_AREA)
    assert np.abs(images[i].astype(float) - direct).mean() < 6.0


def test_train_source_without_augmentation_equals_eval_crop(json_build):
  config = _config(json_build, scale_min=1.0, scale_max=1.0, rotation=0.0, translate=0.0,
                   flip=False, color_jitter=0.0)
  config.dataset.train_split = 'validation'
  images, crop_to_image, keypoints, _ = mpii_pipeline.eval_data(config)
  ds = mpii_pipeline.train_source(config)
  assert len(ds) == 3
  for i in range(3):
    ex = ds[i]
    np.testing.assert_array_equal(ex['image'], images[i])
    expected = keypoints[i].copy()
    expected[:, :2] = transforms.apply_affine(expected[:, :2],
                                              transforms.invert_affine(crop_to_image[i]))
    np.testing.assert_allclose(ex['keypoints'][0], expected, atol=1e-3)
    assert ex['keypoints'].shape == (1, 16, 3) and ex['keypoints'].dtype == np.float32


def test_train_source_is_deterministic_per_index_and_varies_per_epoch(json_build):
  config = _config(json_build)
  a, b = mpii_pipeline.train_source(config), mpii_pipeline.train_source(config)
  for i in (0, 2, 4):   # 4 = person 1 in the second epoch
    np.testing.assert_array_equal(a[i]['image'], b[i]['image'])
    np.testing.assert_array_equal(a[i]['keypoints'], b[i]['keypoints'])
  assert not np.array_equal(a[1]['keypoints'], a[4]['keypoints'])
  config.seed = 1
  assert not np.array_equal(mpii_pipeline.train_source(config)[0]['image'], a[0]['image'])


# ------------------------------------------------------------------------------------------
# Bad input: one bad person among the three good ones of train.json.


def _bad_case(kind, records, root):
  recs = [dict(r) for r in records]
  bad = dict(records[1])
  if kind in ('corrupt', 'truncated'):
    data = (root / 'images' / bad['image']).read_bytes()
    (root / 'images' / 'bad.jpg').write_bytes(
        b'\x00not a jpeg' * 50 if kind == 'corrupt' else data[:len(data) // 2])
    bad['image'] = 'bad.jpg'
  elif kind == 'missing':
    bad['image'] = 'absent.jpg'
  elif kind == 'joints':
    bad['joints'] = bad['joints'][:15]
  elif kind == 'nan':
    bad['joints'] = [list(p) for p in bad['joints']]
    bad['joints'][3] = [float('nan'), 5.0]
  elif kind in ('negative', 'marker'):
    bad['joints'] = [list(p) for p in bad['joints']]
    bad['joints'][3] = [-5000.0, 10.0] if kind == 'negative' else [-1, -1]
  elif kind == 'scale':
    bad['scale'] = 0
  elif kind == 'center':
    bad['center'] = [5000.0, 200.0]
  recs.insert(1, bad)
  return recs


BAD_CASES = {
    'corrupt': ['corrupt or truncated image file', 'bad.jpg', 'train.json record 1'],
    'truncated': ['corrupt or truncated image file', 'bad.jpg', 'truncated'],
    'missing': ['image file not found', 'absent.jpg', "field 'image'"],
    'joints': ['train.json record 1', "field 'joints'", 'has 15 joints, expected 16'],
    'nan': ['train.json record 1', "field 'joints' joint 3", 'nan', 'not finite'],
    # Real MPII joints reach up to 30 px outside the frame; far outside is an error.
    'negative': ['train.json record 1', "field 'joints' joint 3", '-5001.0', 'is negative',
                 'far outside the 854x480 image'],
    'marker': ['train.json record 1', "field 'joints' joint 3", '[-1, -1]', 'missing-joint'],
    'scale': ['train.json record 1', "field 'scale'", 'value 0', 'not positive'],
    'center': ['train.json record 1', "field 'center': value [4999.0, 199.0]",
               'far outside the 854x480 image'],
}


@pytest.mark.parametrize('kind', sorted(BAD_CASES))
def test_bad_example_error_names_file_field_value(tmp_path, shared_data, records, kind):
  manual = _json_layout(tmp_path / 'manual', shared_data, None, None, None)
  (manual / 'annot' / 'train.json').write_text(json.dumps(_bad_case(kind, records, manual)))
  with pytest.raises(ValueError) as info:
    _build(manual, tmp_path / 'out')
  for text in BAD_CASES[kind]:
    assert text in str(info.value), (text, str(info.value))


@pytest.mark.parametrize('kind', sorted(BAD_CASES))
def test_bad_example_skip_counts_and_keeps_the_good(tmp_path, shared_data, records, kind,
                                                     capsys):
  manual = _json_layout(tmp_path / 'manual', shared_data, None, None, None)
  (manual / 'annot' / 'train.json').write_text(json.dumps(_bad_case(kind, records, manual)))
  assert _build(manual, tmp_path / 'out', '--on_bad_example', 'skip') == 0
  report = capsys.readouterr().out
  assert 'skipped 1 bad examples' in report and BAD_CASES[kind][1] in report
  train = _read(tmp_path / 'out', 'train')
  assert [int(e['person_index']) for e in train] == [0, 2, 3]
  assert [e['image_filename'].decode() for e in train] == [r['image'] for r in records]
  for ex, rec in zip(train, records, strict=True):
    np.testing.assert_array_equal(ex['keypoints'], _expected_keypoints(rec))


def test_malformed_json_and_mat_name_the_file(tmp_path, shared_data, records, our_format):
  manual = _json_layout(tmp_path / 'manual', shared_data, None, None, None)
  (manual / 'annot' / 'train.json').write_text(json.dumps(records)[:-40])
  with pytest.raises(ValueError, match=r'malformed JSON in .*train\.json: .*line 1'):
    _build(manual, tmp_path / 'out', '--on_bad_example', 'skip')
  (manual / 'annot' / 'train.json').write_text(json.dumps(records))
  (manual / 'annot' / 'valid.json').write_text(json.dumps(records))
  (manual / 'annot' / 'gt_valid.mat').write_bytes(b'MATLAB 5.0 garbage' * 20)
  with pytest.raises(ValueError, match=r'malformed \.mat file .*gt_valid\.mat'):
    _build(manual, tmp_path / 'out2')


def test_gt_valid_in_another_order_is_refused(tmp_path, shared_data, records, our_format):
  manual = _json_layout(tmp_path / 'manual', shared_data, None, records,
                        _gt_valid(our_format, [1, 0, 2]))
  with pytest.raises(ValueError, match=r'gt_valid\.mat person 0 does not match .*valid\.json '
                                       r'record 0'):
    _build(manual, tmp_path / 'out')


def test_build_synthetic_writes_the_generator_examples(tmp_path):
  assert build.main(['synthetic', '--data_dir', str(tmp_path), '--num_train', '3',
                     '--num_validation', '2', '--image_size', '64', '--seed', '5']) == 0
  from hgjax.datasets import synthetic
  for split, n in (('train', 3), ('validation', 2)):
    ds = tfds.data_source('hgjax_synthetic', split=split, data_dir=str(tmp_path))
    assert len(ds) == n
    for i in range(n):
      ex, ref = ds[i], synthetic.person_example(5, split, i, 64)
      image = cv2.imdecode(np.frombuffer(ex['image'], np.uint8), cv2.IMREAD_COLOR_RGB)
      np.testing.assert_array_equal(image, ref['image'])   # PNG: lossless
      for key in ('keypoints', 'head_box', 'center', 'scale'):
        np.testing.assert_array_equal(ex[key], ref[key])
      assert int(ex['index']) == i
