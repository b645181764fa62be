"""Benchmark command: a tiny timed run produces sane numbers (speed itself is never asserted),
FLOP counts agree with a count from the layer shapes, and the fast conv gradient used for speed
equals XLA's own."""

import json
import os
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from hgjax import allocator
from hgjax import bench
from hgjax import methods
from hgjax.nn import layers

TINY = ['--nstack', '1', '--batch', '2', '--res', '64', '--features', '64', '--depth', '1',
        '--steps', '2', '--warmup', '1']


def _layer_macs(config) -> float:
  """Multiply-adds of every Conv/Dense in one forward pass of one example, counted from the
  kernel shapes and the output sizes seen at call time (independent of XLA)."""
  model = methods.method_for(config).build_model(config)
  size = config.dataset.image_size
  x = jnp.zeros((1, size, size, 3))
  macs = []

  def count(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if isinstance(context.module, (nn.Conv, nn.Dense)) and context.method_name == '__call__':
      kernel = context.module.variables['params']['kernel']
      macs.append(np.prod(out.shape[:-1]) * np.prod(kernel.shape))
    return out

  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  with nn.intercept_methods(count):
    jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)
  return float(sum(macs))


def test_tiny_train_run_writes_consistent_json(tmp_path, capsys):
  out = tmp_path / 'r.json'
  assert bench.main(TINY + ['--mode', 'train', '--json', str(out)]) == 0
  r = json.loads(out.read_text())
  for key in ('examples_per_s', 'step_s', 'step_s_min', 'step_s_max', 'gflop_per_example',
              'gflop_per_example_forward', 'gflop_per_example_train', 'achieved_gflop_s',
              'peak_rss_mib', 'devices', 'jax_version'):
    assert key in r, key
  assert r['steps'] == 2
  assert 0 < r['step_s_min'] <= r['step_s'] <= r['step_s_max']
  assert r['examples_per_s'] == pytest.approx(2 / r['step_s'])
  assert r['achieved_gflop_s'] == pytest.approx(r['gflop_per_example'] * r['examples_per_s'])
  assert r['gflop_per_example'] == r['gflop_per_example_train']
  # Backward costs about twice the forward (minus the unneeded image gradient), plus the
  # optimizer and loss: the train step is 2.5-3.5 forward passes.
  ratio = r['gflop_per_example_train'] / r['gflop_per_example_forward']
  assert 2.5 < ratio < 3.5
  config = bench.make_config('shg', 1, 2, 64, 'float32', 64, 1)
  expected = 2 * _layer_macs(config) / 1e9
  # XLA also counts BatchNorm, ReLU and adds, but skips the zero-padding taps of convolutions
  # (at 64 px the 7x7 stem loses ~9 %): within 10 % of the kernel-shape count.
  assert 0.9 * expected < r['gflop_per_example_forward'] < 1.1 * expected
  assert r['peak_rss_mib'] > 50
  assert 0 < r['rss_after_compile_mib'] <= r['peak_rss_after_compile_mib'] <= r['peak_rss_mib']
  # The step's arguments are the train state (parameters, batch statistics, optimizer slots:
  # at least twice the parameters) and the batch (float32 images here).
  variables = jax.eval_shape(lambda: methods.method_for(config).build_model(config).init(
      jax.random.key(0), jnp.zeros((1, 64, 64, 3)), train=False))
  param_mib = sum(x.size * 4 for x in jax.tree.leaves(variables['params'])) / 2**20
  assert 2 * param_mib < r['xla_argument_mib'] < 5 * param_mib + 2 * 64 * 64 * 3 * 4 / 2**20 + 1
  assert r['xla_temp_mib'] > 0
  assert 0 < r['cpu_utilisation'] <= 1.05        # CPU seconds / (wall seconds x cores)
  assert r['jax_version'] == jax.__version__
  assert len(r['devices']) == jax.device_count()
  assert 'examples_per_s' in capsys.readouterr().out


def test_tiny_infer_run(tmp_path):
  out = tmp_path / 'r.json'
  assert bench.main(TINY + ['--mode', 'infer', '--json', str(out)]) == 0
  r = json.loads(out.read_text())
  assert r['gflop_per_example'] == r['gflop_per_example_forward'] > 0
  assert r['step_s_min'] <= r['step_s'] <= r['step_s_max']


def test_jemalloc_env_preloads_once(monkeypatch):
  monkeypatch.setattr(allocator, 'find_jemalloc', lambda: '/lib/libjemalloc.so.2')
  env = allocator.jemalloc_env({'LD_PRELOAD': '/lib/other.so', 'PATH': '/bin'})
  assert env['LD_PRELOAD'] == '/lib/libjemalloc.so.2:/lib/other.so'
  assert 'dirty_decay_ms:-1' in env['MALLOC_CONF'] and env['PATH'] == '/bin'
  assert allocator.jemalloc_env(env) is None             # already preloaded: no re-exec loop
  monkeypatch.setattr(allocator, 'find_jemalloc', lambda: None)
  assert allocator.jemalloc_env({}) is None


@pytest.mark.parametrize('kernel,stride,padding,dtype', [
    (3, 1, ((1, 1), (1, 1)), jnp.float32),
    (7, 2, ((3, 3), (3, 3)), jnp.float32),
    (3, 2, 'SAME', jnp.float32),
    (3, 1, ((1, 1), (1, 1)), jnp.bfloat16),
])
def test_fast_conv_gradient_equals_xla(kernel, stride, padding, dtype):
  x = jax.random.normal(jax.random.key(0), (2, 11, 13, 5)).astype(dtype)
  w = jax.random.normal(jax.random.key(1), (kernel, kernel, 5, 6)).astype(dtype)
  args = ((stride, stride), padding)
  dims = ('NHWC', 'HWIO', 'NHWC')

  def loss(conv):
    return lambda x, w: jnp.sin(conv(x, w, *args, dimension_numbers=dims)
                                .astype(jnp.float32)).sum()

  np.testing.assert_array_equal(
      layers.conv_general_dilated(x, w, *args, dimension_numbers=dims),
      lax.conv_general_dilated(x, w, *args, dimension_numbers=dims))
  got = jax.grad(loss(layers.conv_general_dilated), (0, 1))(x, w)
  want = jax.grad(loss(lax.conv_general_dilated), (0, 1))(x, w)
  tol = 1e-5 if dtype == jnp.float32 else 2e-2
  for g, ref in zip(got, want, strict=True):
    assert g.dtype == ref.dtype == dtype
    g, ref = np.asarray(g, np.float32), np.asarray(ref, np.float32)
    assert np.abs(g - ref).max() <= tol * np.abs(ref).max()


def test_stack_options_follow_the_config_unless_given(tmp_path):
  from hgjax import defaults
  out = tmp_path / 'r.json'
  assert bench.main(TINY + ['--mode', 'infer', '--json', str(out)]) == 0
  r = json.loads(out.read_text())
  assert r['scan_stacks'] == defaults.get_config().model.scan_stacks
  assert r['remat_stacks'] == defaults.get_config().model.remat_stacks
  args = bench.parse_args(['--scan_stacks', '1'])
  assert args.scan_stacks == 1 and args.remat_stacks is None


def test_synthetic_ae_maps_have_one_candidate_per_person_and_joint():
  from hgjax import grouping
  rng = np.random.default_rng(0)
  heat, tags = bench.synthetic_ae_maps(rng, 64, 5, 17, 2)
  assert heat.shape == (64, 64, 17) and tags.shape == (64, 64, 17, 2)
  loc, val, tag = grouping.candidates(heat, tags, 30, 0.1)
  for k in range(17):
    assert len(loc[k]) == 5, k                     # one peak per person, noise stays below 0.1
    assert (val[k] > 0.25).all()                   # height >= 0.3 at <= 0.71 px off-centre
    # Each candidate's tag is 2 p (+ N(0, 0.1)) for a distinct person p.
    people = np.rint(tag[k][:, 0] / 2)
    assert sorted(people) == list(range(5))
    assert np.abs(tag[k] - 2 * people[:, None]).max() < 0.5


def test_grouping_bench_groups_every_person(tmp_path):
  out = tmp_path / 'g.json'
  assert bench.main(['--grouping', '--images', '2', '--people', '4', '--warmup', '1',
                     '--json', str(out)]) == 0
  r = json.loads(out.read_text())
  assert r['candidates_per_joint'] == 4 and r['people_found_median'] == 4
  assert 0 < r['grouping_ms_min'] <= r['grouping_ms_per_image'] <= r['grouping_ms_max']


def test_thunk_profile_attributes_time_to_the_compiled_ops():
  x = jnp.ones((4, 16, 16, 32))
  w = jnp.ones((3, 3, 32, 32))
  f = jax.jit(lambda x, w: jax.nn.relu(lax.conv_general_dilated(
      x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))).sum(-1))
  compiled = f.lower(x, w).compile()
  text = compiled.as_text()
  cats = bench._thunk_categories(text)
  # The conv is attributed to the library that runs it (YNNPACK by default) or to XLA.
  assert {'library fusion (dot/conv)', 'xla convolution (Eigen)'} & set(cats.values())
  prof = bench.thunk_profile(lambda: jax.block_until_ready(compiled(x, w)), text)
  assert prof and all(v > 0 for v in prof.values())
  assert set(prof) <= set(cats.values())


def test_release_free_memory_returns_freed_heap_pages():
  """Many small blocks freed in the middle of the heap stay resident until released."""
  import ctypes
  import ctypes.util
  libc = ctypes.CDLL(ctypes.util.find_library('c'))
  if allocator.name() != 'default' or not hasattr(libc, 'malloc_trim'):
    pytest.fail('this test expects glibc malloc (run without jemalloc preloaded)')
  libc.malloc.restype = ctypes.c_void_p
  libc.free.argtypes = [ctypes.c_void_p]
  blocks = [libc.malloc(4000) for _ in range(50_000)]          # ~200 MB below the top block
  for b in blocks[:-1]:
    libc.free(b)
  before = bench.current_rss_mib()
  assert allocator.release_free_memory()
  after = bench.current_rss_mib()
  libc.free(blocks[-1])
  assert before - after > 100, (before, after)


def test_runs_from_any_directory(tmp_path):
  """`python -m hgjax.bench` builds its presets in code: it runs outside the repository."""
  env = dict(os.environ, PYTHONPATH=str(Path(bench.__file__).resolve().parents[1]))
  out = tmp_path / 'r.json'
  subprocess.run([sys.executable, '-m', 'hgjax.bench', '--model', 'shg', '--nstack', '1',
                  '--batch', '1', '--res', '64', '--mode', 'infer', '--steps', '1',
                  '--warmup', '0', '--json', str(out)], cwd=tmp_path, env=env, check=True,
                 capture_output=True)
  assert json.loads(out.read_text())['mode'] == 'infer'
