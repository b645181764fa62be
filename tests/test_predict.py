"""predict CLI: crop geometry against closed forms, outputs on real photos, input errors."""

import functools
import json
import subprocess
import sys
from pathlib import Path

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags

from experiments import synthetic as synthetic_config
from hgjax import checkpoints
from hgjax import methods
from hgjax import predict
from hgjax import skeleton
from hgjax import train
from hgjax import transforms
from hgjax.datasets import pipeline

REPO = Path(__file__).resolve().parents[1]
TINY = {'dataset.image_size': 64, 'model.num_stacks': 1, 'model.features': 16,
        'model.stem_features': 16, 'model.depth': 2, 'train.batch_size': 2,
        'train.num_workers': 0, 'eval.batch_size': 4}
COCO_IMAGE = 'mmpose/tests/data/coco/000000000785.jpg'    # 640x425
TINY_AE = TINY | {'dataset.name': 'synthetic_scenes', 'dataset.num_joints': 17,
                  'dataset.max_people': 4, 'model.kind': 'ae', 'model.num_outputs': 34,
                  'model.increase': 8, 'model.inner_increase': 8, 'grouping.max_people': 5}
MPII_IMAGE = 'mmpose/tests/data/mpii/005808361.jpg'       # 1280x720


def tiny_config(overrides=TINY):
  c = synthetic_config.get_config()
  for key, value in overrides.items():
    section, name = key.split('.')
    c[section][name] = value
  return c


def cli(workdir, out, *extra, overrides=TINY):
  return (['predict', f'--config={REPO / "experiments" / "synthetic.py"}',
           *[f'--config.{k}={v}' for k, v in overrides.items()],
           f'--workdir={workdir}', f'--out={out}', *map(str, extra)])


def save_random_checkpoint(config, path):
  """Writes checkpoint 2 of `config`'s model with random weights to workdir `path`.

  The weights are drawn in numpy: initialising through `model.init` compiles the network,
  which costs more than the rest of these tests."""
  model = methods.method_for(config).build_model(config)
  abstract = jax.eval_shape(functools.partial(train.create_state, config, model),
                            jax.random.key(0))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda x: jnp.asarray(rng.normal(0, 0.1, x.shape), x.dtype),
                        abstract.params)
  batch_stats = jax.tree_util.tree_map_with_path(
      lambda p, x: jnp.full(x.shape, 1.0 if p[-1].key == 'var' else 0.0, x.dtype),
      abstract.batch_stats)
  state = train.TrainState.create(apply_fn=model.apply, params=params, batch_stats=batch_stats,
                                  tx=train.make_optimizer(config),
                                  nonfinite_count=jnp.zeros((), jnp.int32),
                                  first_nonfinite_step=jnp.full((), -1, jnp.int32))
  mngr = checkpoints.manager(path, 1)
  checkpoints.save(mngr, 2, state, config.to_dict(), pipeline.train_iterator(config, 0, 1))


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """A workdir with one checkpoint of the tiny single-person model (random weights)."""
  path = tmp_path_factory.mktemp('workdir')
  save_random_checkpoint(tiny_config(), path)
  return path


@pytest.fixture(scope='module')
def whole_image_run(workdir, shared_data, tmp_path_factory):
  out = tmp_path_factory.mktemp('out')
  images = [shared_data / COCO_IMAGE, shared_data / MPII_IMAGE]
  written = predict.main(cli(workdir, out, *images))
  return out, images, written


def check_outputs(out: Path, image_path: Path, written):
  """Schema and per-keypoint checks; returns (keypoints [16, 3], png BGR)."""
  height, width = cv2.imread(str(image_path)).shape[:2]
  assert out / f'{image_path.stem}.json' in written and out / f'{image_path.stem}.png' in written
  record = json.loads((out / f'{image_path.stem}.json').read_text())
  assert set(record) == {'joint_names', 'people'}
  assert record['joint_names'] == list(skeleton.MPII_JOINTS)
  assert len(record['people']) == 1
  person = record['people'][0]
  assert set(person) == {'keypoints', 'score'}
  kp = np.array(person['keypoints'], np.float64)
  assert kp.shape == (16, 3) and np.all(np.isfinite(kp))
  assert np.all((kp[:, 0] >= 0) & (kp[:, 0] <= width - 1)), kp
  assert np.all((kp[:, 1] >= 0) & (kp[:, 1] <= height - 1)), kp
  assert person['score'] == pytest.approx(kp[:, 2].mean(), abs=1e-3)
  png = cv2.imread(str(out / f'{image_path.stem}.png'))
  assert png.shape == (height, width, 3)
  # Every joint is drawn where the JSON puts it (the first person's colour, RGB -> BGR).
  for x, y, _ in kp:
    assert tuple(png[round(y), round(x)]) == predict.PERSON_COLOURS[0][::-1], (x, y)
  return kp, png


def test_whole_image_outputs_on_real_photos(whole_image_run):
  out, images, written = whole_image_run
  assert len(written) == 4
  for image_path in images:
    kp, _ = check_outputs(out, image_path, written)
    assert len(np.unique(kp[:, :2], axis=0)) > 1   # not everything collapsed on one point


def test_bbox_keypoints_lie_in_the_expanded_box(workdir, shared_data, tmp_path):
  image_path = shared_data / MPII_IMAGE
  # The annotated person's joints span x 797-1166, y 79-710; the 825 px square around this
  # box leaves the 1280x720 image on the right, top and bottom.
  bbox = (790.0, 60.0, 390.0, 660.0)
  written = predict.main(cli(workdir, tmp_path, '--bbox', ','.join(map(str, bbox)),
                             image_path))
  kp, png = check_outputs(tmp_path, image_path, written)
  side = predict.BOX_MARGIN * max(bbox[2:])
  cx, cy = bbox[0] + bbox[2] / 2, bbox[1] + bbox[3] / 2
  assert np.all(np.abs(kp[:, 0] - cx) <= side / 2) and np.all(np.abs(kp[:, 1] - cy) <= side / 2)
  # The box itself is drawn (yellow): its top edge, except where a limb crosses it.
  assert np.mean(np.all(png[60, 790:1171] == predict.BOX_COLOUR[::-1], axis=-1)) > 0.8


def test_multi_person_model_outputs(shared_data, tmp_path):
  """AE models: every person found in the whole image, through multi_person.predict_people."""
  save_random_checkpoint(tiny_config(TINY_AE), tmp_path / 'ae')
  image_path = shared_data / 'mmpose/tests/data/coco/000000197388.jpg'   # 640x392
  written = predict.main(cli(tmp_path / 'ae', tmp_path / 'out', image_path, overrides=TINY_AE))
  assert written == [tmp_path / 'out' / '000000197388.json', tmp_path / 'out' / '000000197388.png']
  record = json.loads(written[0].read_text())
  assert record['joint_names'] == list(skeleton.COCO_JOINTS)
  assert 1 <= len(record['people']) <= 5
  scores = [p['score'] for p in record['people']]
  assert scores == sorted(scores, reverse=True)
  for person in record['people']:
    kp = np.array(person['keypoints'])
    assert kp.shape == (17, 3) and np.all(np.isfinite(kp))
  assert cv2.imread(str(written[1])).shape == (392, 640, 3)
  with pytest.raises(predict.InputError, match='--bbox applies to single-person models'):
    predict.main(cli(tmp_path / 'ae', tmp_path / 'out', '--bbox=1,2,3,4', image_path,
                     overrides=TINY_AE))


def test_openpose_format_writes_the_documented_layout(shared_data, tmp_path):
  """--format openpose: <stem>_keypoints.json as `openpose --write_json` (version 1.3, 18 parts
  flat x, y, c, missing 0, 0, 0, the other arrays empty) with the people of the hgjax format."""
  save_random_checkpoint(tiny_config(TINY_AE), tmp_path / 'ae')
  image_path = shared_data / 'mmpose/tests/data/coco/000000197388.jpg'   # 640x392
  plain = predict.main(cli(tmp_path / 'ae', tmp_path / 'plain', image_path, overrides=TINY_AE))
  written = predict.main(cli(tmp_path / 'ae', tmp_path / 'op', '--format=openpose', image_path,
                             overrides=TINY_AE))
  assert written == [tmp_path / 'op' / '000000197388_keypoints.json',
                     tmp_path / 'op' / '000000197388_rendered.png']
  record = json.loads(written[0].read_text())
  assert set(record) == {'version', 'people'} and record['version'] == 1.3
  people17 = [np.array(p['keypoints']) for p in json.loads(plain[0].read_text())['people']]
  assert len(record['people']) == len(people17) >= 1
  empty = ('face_keypoints_2d', 'hand_left_keypoints_2d', 'hand_right_keypoints_2d',
           'pose_keypoints_3d', 'face_keypoints_3d', 'hand_left_keypoints_3d',
           'hand_right_keypoints_3d')
  coco18_from_17 = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
  for person, kp17 in zip(record['people'], people17, strict=True):
    assert person['person_id'] == [-1]
    assert all(person[name] == [] for name in empty)
    kp = np.array(person['pose_keypoints_2d']).reshape(18, 3)
    for part, src in enumerate(coco18_from_17):
      if src is None:                  # the neck: mean of the shoulders, the smaller score
        found = kp17[5, 2] > 0 and kp17[6, 2] > 0
        want = ([*(kp17[5, :2] + kp17[6, :2]) / 2, min(kp17[5, 2], kp17[6, 2])] if found
                else [0, 0, 0])
      else:
        want = kp17[src] if kp17[src, 2] > 0 else [0, 0, 0]
      np.testing.assert_allclose(kp[part], want, atol=0.02)
  assert cv2.imread(str(written[1])).shape == (392, 640, 3)
  with pytest.raises(predict.InputError, match='--format=openpose writes COCO-18 people'):
    predict.main(cli(tmp_path / 'ae', tmp_path / 'x', '--format=openpose', image_path))


@pytest.mark.parametrize('center,side', [((319.5, 212.0), 640.0),    # whole image, 10x
                                         ((301.0, 215.0), 73.0),     # no pre-resize
                                         ((330.3, 190.7), 187.5)])   # pre-resize, 2.9x
def test_crop_image_puts_image_points_where_the_transform_says(center, side):
  image = np.zeros((425, 640, 3), np.uint8)
  dot = np.array([301.0, 211.0])               # a 15 px white square centred here
  image[204:219, 294:309] = 255
  crop, a = predict.crop_image(image, center, side, 64)
  assert crop.shape == (64, 64, 3)
  np.testing.assert_allclose(a, transforms.crop_transform(center, side / 200, 0, (64, 64)))
  w = crop[..., 0].astype(np.float64)
  ys, xs = np.mgrid[:64, :64]
  centroid = np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()
  np.testing.assert_allclose(centroid, transforms.apply_affine(dot, a), atol=0.15)
  # Brightness is preserved (area averaging, no aliasing): the square's share of the crop.
  scale = 64 / side
  assert w.sum() / 255 == pytest.approx(15 * 15 * scale**2, rel=0.05)


def test_whole_image_and_bbox_squares():
  center, side = predict.crop_square(640, 425)
  np.testing.assert_allclose(center, [319.5, 212.0])
  assert side == 640
  a = transforms.crop_transform(center, side / 200, 0, (64, 64))
  # The image's outer edges (x = -0.5 and x = W - 0.5) are the crop's outer edges.
  np.testing.assert_allclose(transforms.apply_affine([[-0.5, -0.5], [639.5, 424.5]], a),
                             [[-0.5, -0.5 + 32 * (640 - 425) / 640],
                              [63.5, 63.5 - 32 * (640 - 425) / 640]])
  center, side = predict.crop_square(640, 425, (100, 50, 80, 200))
  np.testing.assert_allclose(center, [140, 150])
  assert side == 250


def test_decode_maps_heatmap_peaks_back_and_stays_in_the_image():
  width, height, size, stride = 640, 425, 64, 4
  center, side = predict.crop_square(width, height)
  to_image = transforms.invert_affine(
      transforms.crop_transform(center, side / 200, 0, (size, size)))
  heat = np.zeros((16, 16, 3), np.float32)
  heat[7, 3, 0] = 1.0      # joint 0: a plain peak, neighbours equal -> no sub-pixel shift
  heat[0, 9, 1] = 1.0      # joint 1: strongest peak in the black padding above the image...
  heat[4, 9, 1] = 0.5      # ...and the best one inside it
  heat[5, 12, 2] = 0.8     # joint 2: quarter-pixel shift toward the larger right neighbour
  heat[5, 13, 2] = 0.4
  heat[5, 11, 2] = 0.1
  kp = predict.decode_in_image(heat, to_image, width, height, stride, 'quarter')

  def closed_form(u, v):   # grid cell -> crop pixel -> image pixel; 40 image px per cell
    return [(u + 0.5) * side / 16 - 0.5 - side / 2 + width / 2,
            (v + 0.5) * side / 16 - 0.5 - side / 2 + height / 2]

  np.testing.assert_allclose(kp[0], closed_form(3, 7) + [1.0], atol=1e-6)
  np.testing.assert_allclose(kp[1], closed_form(9, 4) + [0.5], atol=1e-6)
  np.testing.assert_allclose(kp[2], closed_form(12.25, 5) + [0.8], atol=1e-6)
  assert closed_form(9, 0)[1] < 0 < closed_form(9, 3)[1]   # rows 0-2 are padding
  # 'dark' smooths first: the padding still cannot win, symmetric peaks stay put.
  kp = predict.decode_in_image(heat, to_image, width, height, stride, 'dark', 1.0)
  np.testing.assert_allclose(kp[0], closed_form(3, 7) + [1.0], atol=1e-4)
  np.testing.assert_allclose(kp[1], closed_form(9, 4) + [0.5], atol=1e-4)


@pytest.mark.parametrize('text', ['1,2,3', 'a,b,c,d', '1,2,0,4', '1,2,3,-4', '1,2,3,nan', ''])
def test_bad_bbox(text):
  with pytest.raises(predict.InputError, match=r'--bbox=.*expected x,y,w,h'):
    predict.parse_bbox(text)


def test_bbox_outside_the_image(workdir, shared_data, tmp_path):
  with pytest.raises(predict.InputError, match=r'lies outside image .*000000000785.jpg'):
    predict.main(cli(workdir, tmp_path, '--bbox=700,10,50,50', shared_data / COCO_IMAGE))


def test_missing_and_corrupt_images(workdir, shared_data, tmp_path):
  good = shared_data / COCO_IMAGE
  with pytest.raises(predict.InputError, match=r'image not found: .*nope\.jpg'):
    predict.main(cli(workdir, tmp_path / 'out', good, tmp_path / 'nope.jpg'))
  truncated = tmp_path / 'truncated.jpg'
  truncated.write_bytes(good.read_bytes()[:20000])
  garbage = tmp_path / 'garbage.png'
  garbage.write_bytes(b'this is not an image' * 50)
  for bad in (truncated, garbage):
    with pytest.raises(predict.InputError, match=rf'cannot read image .*{bad.name}'):
      predict.main(cli(workdir, tmp_path / 'out', bad))
  with pytest.raises(predict.InputError, match='no images given'):
    predict.main(cli(workdir, tmp_path / 'out'))
  twins = tmp_path / 'b' / good.name
  twins.parent.mkdir()
  twins.write_bytes(good.read_bytes())
  with pytest.raises(predict.InputError, match='share the name'):
    predict.main(cli(workdir, tmp_path / 'out', good, twins))
  assert not (tmp_path / 'out').exists()


def test_no_checkpoint(shared_data, tmp_path):
  empty = tmp_path / 'empty'
  with pytest.raises(predict.InputError, match=r'no checkpoint in .*empty/checkpoints'):
    predict.main(cli(empty, tmp_path / 'out', shared_data / COCO_IMAGE))
  assert not (empty / 'checkpoints').exists()   # looking for one creates nothing


def test_flag_errors_and_help(workdir, capsys):
  with pytest.raises(predict.InputError, match='missing required flag.*--out'):
    predict.main(cli(workdir, 'x')[:-1] + ['a.jpg'])
  with pytest.raises(predict.InputError, match='override names a key.*no_such_key'):
    predict.main(cli(workdir, 'x') + ['--config.model.no_such_key=1', 'a.jpg'])
  with pytest.raises(flags.Error, match='config.model.features=abc'):
    predict.main(cli(workdir, 'x') + ['--config.model.features=abc', 'a.jpg'])
  with pytest.raises(predict.InputError, match='(?s)--config: .*No such file.*nope.py'):
    predict.main(['predict', '--config=experiments/nope.py', '--workdir=x', '--out=y', 'a.jpg'])
  assert predict.main(['predict', '--help']) == []
  assert '--bbox' in capsys.readouterr().out


def test_config_that_does_not_match_the_checkpoint(workdir, shared_data, tmp_path):
  with pytest.raises(predict.InputError, match=r'model\.features=32 \(checkpoint: 16\)'):
    predict.main(cli(workdir, tmp_path, '--config.model.features=32', shared_data / COCO_IMAGE))


def test_command_line_reports_errors_without_traceback(tmp_path):
  args = cli(tmp_path, tmp_path, '--bbox=1,2,3', 'a.jpg')[1:]
  result = subprocess.run([sys.executable, '-m', 'hgjax.predict', *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith("error: --bbox='1,2,3'")
  assert 'Traceback' not in result.stderr
