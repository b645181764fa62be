"""Associative Embedding loss: tag targets, push/pull against hand-computed values
(`hgjax.tag_loss`), the full loss of the AE method (`hgjax.methods.ae.loss`)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hgjax import tag_loss
from hgjax import targets
from hgjax.methods import ae


def _tags(per_person, k=3, d=1):
  """[[tag or None per joint] per person] -> (person_tags [1, P, K, D], valid [1, P, K])."""
  p = len(per_person)
  t = np.zeros((1, p, k, d), np.float32)
  v = np.zeros((1, p, k), bool)
  for i, joints in enumerate(per_person):
    for j, value in enumerate(joints):
      if value is not None:
        t[0, i, j] = value
        v[0, i, j] = True
  return jnp.asarray(t), jnp.asarray(v)


def _reference(person_tags, valid, form='exp', margin=1.0):
  """Loop over people as the authors' `singleTagLoss` does (pose-ae-train), one image."""
  means, pull = [], 0.0
  for tags, ok in zip(person_tags, valid, strict=True):
    joints = tags[ok]
    if len(joints) == 0:
      continue
    means.append(joints.mean(0))
    pull += ((joints - means[-1]) ** 2).mean()
  n = len(means)
  if n == 0:
    return 0.0, 0.0
  push = 0.0
  for a in range(n):
    for b in range(n):
      if a != b:
        dist2 = ((means[a] - means[b]) ** 2).sum()
        push += math.exp(-dist2) if form == 'exp' else max(0.0, margin - math.sqrt(dist2))
  return (0.5 * push / (n * (n - 1)) if n > 1 else 0.0), pull / n


def test_two_people_hand_computed():
  # Person A: tags 1 and 3 (mean 2, pull 1); person B: one joint, tag 2.5 (pull 0).
  t, v = _tags([[1.0, 3.0, None], [None, None, 2.5]])
  push, pull = tag_loss.push_pull(t, v)
  assert float(pull[0]) == pytest.approx(0.5)                        # (1 + 0) / 2
  assert float(push[0]) == pytest.approx(0.5 * math.exp(-0.25))      # 0.5 * mean of 2 pairs
  push_m, pull_m = tag_loss.push_pull(t, v, form='margin', margin=1.0)
  assert float(push_m[0]) == pytest.approx(0.5 * 0.5)                # max(0, 1 - 0.5)
  assert float(pull_m[0]) == pytest.approx(0.5)


def test_one_person_and_no_person():
  t, v = _tags([[1.0, 2.0, 6.0], [None, None, None]])
  push, pull = tag_loss.push_pull(t, v)
  assert float(push[0]) == 0.0
  assert float(pull[0]) == pytest.approx(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 3)
  t0, v0 = _tags([[None, None, None], [None, None, None]])
  for form in ('exp', 'margin'):
    push, pull = tag_loss.push_pull(t0, v0, form=form)
    assert float(push[0]) == 0.0 and float(pull[0]) == 0.0


@pytest.mark.parametrize('form', ['exp', 'margin'])
def test_against_loop_reference_multidim(form):
  rng = np.random.default_rng(0)
  t = rng.normal(size=(3, 5, 17, 2)).astype(np.float32)
  v = rng.random((3, 5, 17)) < 0.6
  v[1, 2:] = False            # padding people
  v[2, 1:] = False            # a single person
  push, pull = tag_loss.push_pull(jnp.asarray(t), jnp.asarray(v), form=form, margin=1.5)
  for b in range(3):
    ref_push, ref_pull = _reference(t[b], v[b], form, 1.5)
    assert float(push[b]) == pytest.approx(ref_push, rel=1e-5, abs=1e-7)
    assert float(pull[b]) == pytest.approx(ref_pull, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize('form', ['exp', 'margin'])
@pytest.mark.parametrize('people', [0, 1, 2])
def test_gradients_finite(form, people):
  # Two people with identical tags: the margin form's sqrt is at 0.
  t = jnp.ones((1, 3, 4, 1))
  v = jnp.zeros((1, 3, 4), bool).at[0, :people].set(True)

  def total(tags):
    push, pull = tag_loss.push_pull(tags, v, form=form)
    return (push + pull).sum()

  value, grad = jax.value_and_grad(total)(t)
  assert np.isfinite(float(value))
  assert np.all(np.isfinite(np.asarray(grad)))


def test_tag_targets_index_the_right_pixels():
  h = w = 8
  stride = 4
  # Grid position u = (x + 0.5) / 4 - 0.5: x = 9.1 -> u = 1.9 (pixel 2); x = 10.1 -> 2.15 (2);
  # x = 11.9 -> u = 2.6 (3). Joint 3 unlabelled, joint 4 outside the grid.
  kp = np.zeros((1, 2, 5, 3), np.float32)
  kp[0, 0] = [[9.1, 21.5, 2], [10.1, 0.0, 1], [11.9, 29.9, 2], [5.0, 5.0, 0], [40.0, 3.0, 2]]
  # Person 1 is padding (v = 0) except one joint in the bottom-right pixel.
  kp[0, 1, 2] = [31.0, 31.0, 1]
  idx, valid = tag_loss.tag_targets(jnp.asarray(kp), (h, w), stride)
  idx, valid = np.asarray(idx), np.asarray(valid)
  expected = {(0, 0): (0, 5, 2), (0, 1): (1, 0, 2), (0, 2): (2, 7, 3), (1, 2): (2, 7, 7)}
  want_valid = np.zeros((2, 5), bool)
  for (p, j), (k, row, col) in expected.items():
    assert idx[0, p, j] == k * h * w + row * w + col
    want_valid[p, j] = True
  np.testing.assert_array_equal(valid[0], want_valid)
  # The gathered tag is the value at that pixel of that joint's tag map.
  tag_map = np.random.default_rng(1).normal(size=(1, h, w, 5, 2)).astype(np.float32)
  got = np.asarray(tag_loss.gather_tags(jnp.asarray(tag_map), jnp.asarray(idx)))
  for (p, j), (k, row, col) in expected.items():
    np.testing.assert_array_equal(got[0, p, j], tag_map[0, row, col, k])
  # The tag pixel is the target heatmap's peak pixel.
  maps = np.asarray(targets.render_heatmaps(jnp.asarray(kp[:, :1]), (h, w), stride, 1.0))[0]
  for j in range(3):
    row, col = np.unravel_index(maps[..., j].argmax(), (h, w))
    assert (row, col) == expected[(0, j)][1:]


def _settings(**kw):
  base = dict(num_joints=2, heatmap_size=8, stride=4, sigma=1.0, foreground_weight=1.0,
              intermediate_supervision=True, tag_dim=1, push_weight=1e-3, pull_weight=1e-3,
              push_form='exp', push_margin=1.0)
  base.update(kw)
  return ae.Settings(flip_perm=None, **base)


def _ae_loss(outputs, batch, s):
  """(total, per-stack losses [S]) of the AE method's targets and loss."""
  total, terms = ae.loss(outputs, ae.render_targets(batch, s), s)
  return total, jnp.stack([terms[f'loss_stack{i}'] for i in range(outputs.shape[1])])


def _batch():
  kp = np.zeros((1, 3, 2, 3), np.float32)
  kp[0, 0] = [[5.5, 5.5, 2], [13.5, 9.5, 2]]        # grid (1, 1) and (3, 2)
  kp[0, 1] = [[25.5, 21.5, 2], [17.5, 29.5, 1]]     # grid (6, 5) and (4, 7)
  return {'keypoints': jnp.asarray(kp), 'mask': jnp.ones((1, 8, 8), jnp.float32)}


def _perfect_outputs(batch, stacks=2, person_tags=(0.0, 10.0)):
  s = _settings()
  heat = targets.render_heatmaps(batch['keypoints'], (8, 8), 4, 1.0)       # [1, 8, 8, 2]
  tags = np.zeros((1, 8, 8, 2), np.float32)
  for (col, row, j), tag in zip([(1, 1, 0), (3, 2, 1), (6, 5, 0), (4, 7, 1)],
                                [person_tags[0]] * 2 + [person_tags[1]] * 2, strict=True):
    tags[0, row, col, j] = tag
  out = jnp.concatenate([heat, jnp.asarray(tags)], axis=-1)
  return jnp.stack([out] * stacks, axis=1), s


def test_ae_loss_perfect_prediction_and_terms():
  batch = _batch()
  outputs, s = _perfect_outputs(batch)
  total, per_stack = _ae_loss(outputs, batch, s)
  assert per_stack.shape == (2,)
  assert float(total) == pytest.approx(0.0, abs=1e-9)   # push 0.5 * exp(-100)
  # Tags 0 and 0.5 apart: push = 0.5 * exp(-0.25) per stack, weighted by 1e-3.
  outputs, s = _perfect_outputs(batch, person_tags=(0.0, 0.5))
  total, per_stack = _ae_loss(outputs, batch, s)
  np.testing.assert_allclose(per_stack, 1e-3 * 0.5 * math.exp(-0.25), rtol=1e-5)
  # One wrong tag of person 0 (joint 1 at grid (3, 2)): tags 0 and 2 -> mean 1, pull 1 / 2.
  outputs, s = _perfect_outputs(batch)
  bad = outputs.at[0, 0, 2, 3, 3].set(2.0)
  _, per_stack = _ae_loss(bad, batch, s)
  assert float(per_stack[0]) == pytest.approx(1e-3 * 0.5, rel=1e-4)
  assert float(per_stack[1]) == pytest.approx(0.0, abs=1e-9)
  # Without intermediate supervision only the last stack counts.
  total, _ = _ae_loss(bad, batch, _settings(intermediate_supervision=False))
  assert float(total) == pytest.approx(0.0, abs=1e-9)


def test_heatmap_term_and_mask():
  batch = _batch()
  outputs, s = _perfect_outputs(batch)
  # +0.5 on one heatmap pixel: MSE = 0.25 / (8 * 8 * 2) in that stack.
  bad = outputs.at[0, 1, 0, 7, 0].add(0.5)
  _, per_stack = _ae_loss(bad, batch, s)
  assert float(per_stack[1]) == pytest.approx(0.25 / 128, rel=1e-5)
  # Unlabelled joints are trained too (towards zero): same error on a joint nobody has.
  masked = dict(batch, mask=batch['mask'].at[0, 0, 7].set(0.0))
  _, per_stack = _ae_loss(bad, masked, s)
  assert float(per_stack[1]) == pytest.approx(0.0, abs=1e-9)


def test_loss_finite_gradient_for_empty_images_under_jit():
  s = _settings()
  batch = {'keypoints': jnp.zeros((2, 3, 2, 3)), 'mask': jnp.ones((2, 8, 8))}
  outputs = jnp.asarray(np.random.default_rng(0).normal(size=(2, 2, 8, 8, 4)), jnp.float32)
  grad = jax.jit(jax.grad(lambda o: _ae_loss(o, batch, s)[0]))(outputs)
  assert np.all(np.isfinite(np.asarray(grad)))
  # Only the heatmap channels get gradient when no person is present.
  assert np.all(np.asarray(grad)[..., 2:] == 0)
