"""Benchmarks: the real training / inference step, the host input pipeline, AE grouping.

  python -m hgjax.bench --model shg --nstack 2 --batch 8 --mode train [--peer] [--json F]
  python -m hgjax.bench --pipeline synthetic|mpii|coco
  python -m hgjax.bench --grouping

The step benchmark builds its config in code (`make_config`: `hgjax.defaults`, i.e. the MPII
paper settings of `experiments/mpii.py`, adjusted by the flags; a multi-person method gets
COCO's shapes) and times exactly what training runs: `train.create_state`,
`train.jit_train_step(config, mesh)` and `train.global_batch`. Compilation is excluded (the step
is compiled ahead of time, then warmed up); every timed step ends with a host sync. FLOPs come
from XLA's cost analysis of the compiled programs. `--peer` times the PyTorch peer
(`torch_peer.py bench`, run with the python of a separate venv) alternately with hgjax, several
rounds in one run, so that both see the same machine load and the same allocator (the child
inherits LD_PRELOAD / MALLOC_CONF).

`--allocator jemalloc|default` re-executes the process with / without jemalloc preloaded
(`hgjax.allocator`; `hgjax.main` re-executes itself with jemalloc the same way).
"""

import argparse
import functools
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from hgjax import allocator
from hgjax import datasets
from hgjax import defaults
from hgjax import methods

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PEER = REPO.parent / 'shared' / 'tools' / 'torch_peer.py'
DEFAULT_PEER_PYTHON = Path('/work/torchvenv/bin/python')
# The networks shared/tools/torch_peer.py has, by its own names (its `--model`).
TORCH_PEER_MODELS = {'shg': 'shg', 'higherhrnet': 'hhr', 'openpose': 'openpose'}


def peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_cpu_s() -> float:
  """User + system CPU seconds of this process (all threads)."""
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def current_rss_mib() -> float:
  with open('/proc/self/statm') as f:
    return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def make_config(model: str, nstack: int, batch: int, res: int, dtype: str,
                features: int | None = None, depth: int | None = None):
  """`hgjax.defaults` (the MPII paper settings) adjusted by the benchmark flags (model: a
  `config.model.kind`; features/depth: None = as is). A multi-person method gets COCO's
  shapes: 17 joints, 30 people, the method's output channels."""
  method = methods.method_named(model)
  config = defaults.get_config()
  config.model.kind = model
  if features is not None:
    config.model.features = config.model.stem_features = features
  if depth is not None:
    config.model.depth = depth
  config.model.num_stacks = nstack
  config.model.dtype = dtype
  config.dataset.image_size = res
  config.dataset.heatmap_stride = method.target_stride
  config.train.batch_size = batch
  if method.multi_person:
    config.dataset.name = 'coco'
    config.dataset.num_joints = 17
    config.dataset.max_people = 30
    config.model.num_outputs = method.num_outputs(config)
  return config


def fake_batch(config, seed: int = 0) -> dict:
  """A numpy training batch with the shapes and dtypes of the input pipeline's."""
  d = config.dataset
  rng = np.random.default_rng(seed)
  b, s, k = config.train.batch_size, d.image_size, d.num_joints
  kp = np.concatenate([rng.uniform(0, s - 1, (b, d.max_people, k, 2)),
                       np.ones((b, d.max_people, k, 1))], axis=-1).astype(np.float32)
  batch = {'image': rng.integers(0, 256, (b, s, s, 3), dtype=np.uint8), 'keypoints': kp}
  if methods.method_for(config).multi_person:
    h = s // d.heatmap_stride
    batch['mask'] = np.ones((b, h, h), np.float32)
  return batch


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):   # older jax: one dict per program
    cost = cost[0]
  return float(cost.get('flops', float('nan')))


def _summary(times: list, batch: int) -> dict:
  med = statistics.median(times)
  return {'step_s': med, 'step_s_min': min(times), 'step_s_max': max(times),
          'examples_per_s': batch / med}


class StepBench:
  """The compiled training (or inference) step with its state and a device-resident batch."""

  def __init__(self, config, mode: str):
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from hgjax import train
    self.config, self.mode = config, mode
    self.batch_size = config.train.batch_size
    mesh = train.make_mesh()
    method = methods.method_for(config)
    model = method.build_model(config)
    replicated = NamedSharding(mesh, P())
    state = jax.jit(functools.partial(train.create_state, config, model),
                    out_shardings=replicated)(jax.random.key(config.seed))
    batch = train.global_batch(fake_batch(config), mesh)
    t0 = time.perf_counter()

    def forward(variables, images):
      return model.apply(variables, method.normalize_images(images), train=False)

    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    forward_jit = jax.jit(forward, in_shardings=(replicated, batch['image'].sharding))
    fwd = forward_jit.lower(variables, batch['image']).compile()
    self.forward_flops = _flops(fwd) / self.batch_size
    if mode == 'train':
      step = train.jit_train_step(config, mesh)
      lr = (np.float32(config.optimizer.learning_rate),) if train.paced_by_budget(config) else ()
      compiled = step.lower(state, batch, *lr).compile()
      self.train_flops = _flops(compiled) / self.batch_size
      self.compiled_text = compiled.as_text()
      self.memory = compiled.memory_analysis()
      self._run = lambda: compiled(self._state, batch, *lr)
      self._state = state
    else:
      self.train_flops = float('nan')
      self.compiled_text = fwd.as_text()
      self.memory = fwd.memory_analysis()
      self._state = None
      del state
      self._run = lambda: fwd(variables, batch['image'])
    self.compile_s = time.perf_counter() - t0
    allocator.release_free_memory()      # as training does after its compiling first step
    # Resident set after compilation, before any step runs (compilation has its own peak).
    self.rss_after_compile_mib = current_rss_mib()
    self.peak_rss_after_compile_mib = peak_rss_mib()
    self._jax = jax

  def memory_mib(self) -> dict:
    """XLA's buffer assignment of the compiled step, MiB: temp (activations and scratch),
    arguments, outputs, and outputs aliased to donated arguments."""
    m = self.memory
    if m is None:
      return {}
    mib = 2.0 ** 20
    return {'xla_temp_mib': m.temp_size_in_bytes / mib,
            'xla_argument_mib': m.argument_size_in_bytes / mib,
            'xla_output_mib': m.output_size_in_bytes / mib,
            'xla_alias_mib': m.alias_size_in_bytes / mib}

  def step(self) -> float:
    """One step, synchronised with the host; returns its wall time in seconds."""
    t = time.perf_counter()
    out = self._run()
    if self.mode == 'train':
      self._state, out = out
    self._jax.block_until_ready(out)
    return time.perf_counter() - t

  def time(self, steps: int) -> list:
    return [self.step() for _ in range(steps)]


def _vm_hwm_mib(pid: int) -> float:
  """Peak resident memory of process `pid` (VmHWM), or 0 when it is gone."""
  try:
    with open(f'/proc/{pid}/status') as f:
      for line in f:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return 0.0


def run_peer(args) -> dict:
  """One `torch_peer.py bench` run in the torch venv; returns its JSON line.

  Its own `peak_rss_mib` (getrusage) would include ours: Linux carries ru_maxrss over fork and
  exec. So the child's VmHWM is polled instead and reported as `peak_rss_mib`.
  """
  if args.model not in TORCH_PEER_MODELS:
    raise SystemExit(f'--peer: torch_peer.py has no {args.model!r} network (it has '
                     f'{", ".join(TORCH_PEER_MODELS)})')
  cmd = [str(args.peer_python), str(args.peer_script), 'bench',
         '--model', TORCH_PEER_MODELS[args.model], '--nstack', str(args.nstack),
         '--res', str(args.res), '--dtype', args.dtype,
         '--batch', str(args.batch), '--steps', str(args.steps), '--mode', args.mode,
         '--threads', str(args.threads)]
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  hwm = 0.0
  while proc.poll() is None:
    hwm = max(hwm, _vm_hwm_mib(proc.pid))
    time.sleep(0.05)
  out, err = proc.communicate()
  if proc.returncode:
    raise RuntimeError(f'{" ".join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}')
  result = json.loads(out.strip().splitlines()[-1])
  result['peak_rss_mib'] = hwm
  return result


TORCH_CONV = r'''
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
b, h, c, steps = (int(a) for a in sys.argv[2:6])
conv = torch.nn.Conv2d(c, c, 3, padding=1)
x = torch.randn(b, c, h, h)
ts = []
with torch.inference_mode():
  for i in range(steps + 2):
    t = time.perf_counter(); conv(x); ts.append(time.perf_counter() - t)
ts = sorted(ts[2:])
print(json.dumps({'step_s': ts[len(ts) // 2]}))
'''


def conv3x3_flops(b: int, h: int, c: int) -> float:
  """Multiply-adds x 2 of a 'same' 3x3 conv, c -> c channels on [b, h, h, c]."""
  return 2.0 * b * h * h * c * c * 9


def xla_conv_peak(b: int, h: int, c: int, steps: int) -> float:
  """GFLOP/s of a lone 3x3 conv in XLA (NHWC, float32), median over `steps`."""
  import jax
  x = jax.random.normal(jax.random.key(0), (b, h, h, c))
  w = jax.random.normal(jax.random.key(1), (3, 3, c, c)) * 0.05
  f = jax.jit(lambda x, w: jax.lax.conv_general_dilated(
      x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
  jax.block_until_ready(f(x, w))
  ts = []
  for _ in range(steps):
    t = time.perf_counter()
    jax.block_until_ready(f(x, w))
    ts.append(time.perf_counter() - t)
  return conv3x3_flops(b, h, c) / statistics.median(ts) / 1e9


def torch_conv_peak(args, b: int, h: int, c: int, steps: int) -> float:
  cmd = [str(args.peer_python), '-c', TORCH_CONV, str(args.threads), str(b), str(h), str(c),
         str(steps)]
  out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
  return conv3x3_flops(b, h, c) / json.loads(out.strip().splitlines()[-1])['step_s'] / 1e9


def _thunk_categories(hlo_text: str) -> dict:
  """Instruction name -> category for the thunks of a compiled XLA:CPU program."""
  out = {}
  for line in hlo_text.split('\n'):
    m = re.match(r'\s*(?:ROOT )?%([\w.\-]+) = \S+ ([\w\-]+)\(', line)
    if not m:
      continue
    name, op = m.groups()
    if '"kind":"__ynn_fusion"' in line or '"kind":"__xnn_fusion"' in line:
      cat = 'library fusion (dot/conv)'
    elif op in ('dot', 'convolution'):
      cat = f'xla {op} (Eigen)'
    elif op == 'fusion':
      kind = re.search(r'kind=k(\w+)', line).group(1).lower()
      cat = ('transpose/copy' if 'copy' in name or 'transpose' in name
             else 'pad/slice (im2col taps)' if 'pad_slice' in name
             else f'{kind} fusion (BN, ReLU, adds, reductions)')
    else:
      cat = op
    out[name] = cat
  return out


def thunk_profile(run, hlo_text: str) -> dict:
  """Runs `run()` once under the JAX profiler and sums the XLA:CPU thunk durations by
  category (milliseconds, summed over threads). Thunks that complete asynchronously (Eigen
  dots and convolutions) are counted up to their launch only."""
  import tempfile

  import jax
  from jax.profiler import ProfileData
  cats = _thunk_categories(hlo_text)
  with tempfile.TemporaryDirectory() as d:
    jax.profiler.start_trace(d)
    run()
    jax.profiler.stop_trace()
    (path,) = Path(d).glob('**/*.xplane.pb')
    data = ProfileData.from_file(str(path))
  totals = {}
  for plane in data.planes:
    for line in plane.lines:
      for ev in line.events:
        if ev.name in cats:
          totals[cats[ev.name]] = totals.get(cats[ev.name], 0.0) + ev.duration_ns / 1e6
  return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def bench_step(args) -> dict:
  import jax
  config = make_config(args.model, args.nstack, args.batch, args.res, args.dtype, args.features,
                       args.depth)
  if args.scan_stacks is not None:
    config.model.scan_stacks = bool(args.scan_stacks)
  if args.remat_stacks is not None:
    config.model.remat_stacks = bool(args.remat_stacks)
  bench = StepBench(config, args.mode)
  bench.time(args.warmup)
  rounds = args.rounds if args.peer else 1
  ours, peer, ratios = [], [], []
  cpu_s = 0.0
  for r in range(rounds):
    c = process_cpu_s()
    times = bench.time(args.steps)
    cpu_s += process_cpu_s() - c
    ours.extend(times)
    line = f'round {r + 1}/{rounds}: hgjax {args.batch / statistics.median(times):.2f} ex/s'
    if args.peer:
      p = run_peer(args)
      peer.append(p)
      ratios.append(p['step_s'] / statistics.median(times))
      line += f', pytorch {p["examples_per_s"]:.2f} ex/s, ratio {ratios[-1]:.2f}'
    if rounds > 1:
      print(line, flush=True)
  result = {'model': args.model, 'nstack': args.nstack, 'batch': args.batch, 'mode': args.mode,
            'res': args.res, 'dtype': args.dtype, 'scan_stacks': config.model.scan_stacks,
            'remat_stacks': config.model.remat_stacks, 'steps': len(ours),
            **_summary(ours, args.batch),
            'gflop_per_example_forward': bench.forward_flops / 1e9,
            'gflop_per_example_train': bench.train_flops / 1e9}
  result['gflop_per_example'] = (result['gflop_per_example_train'] if args.mode == 'train'
                                 else result['gflop_per_example_forward'])
  result['achieved_gflop_s'] = result['gflop_per_example'] * result['examples_per_s']
  # Busy share of the cores while stepping (1: every core busy all the time).
  result['cpu_utilisation'] = cpu_s / sum(ours) / os.cpu_count()
  result.update(compile_s=bench.compile_s, peak_rss_mib=peak_rss_mib(),
                rss_mib=current_rss_mib(), rss_after_compile_mib=bench.rss_after_compile_mib,
                peak_rss_after_compile_mib=bench.peak_rss_after_compile_mib,
                **bench.memory_mib())
  if args.profile:
    result['profile_ms'] = thunk_profile(bench.step, bench.compiled_text)
  if args.conv_peak:
    result['conv3x3_peak_gflop_s'] = xla_conv_peak(args.batch, args.res // 4, 128, 10)
    result['mfu'] = result['achieved_gflop_s'] / result['conv3x3_peak_gflop_s']
  if args.peer:
    step_s = statistics.median(p['step_s'] for p in peer)
    result['peer'] = {'examples_per_s': args.batch / step_s, 'step_s': step_s,
                      'step_s_rounds': [p['step_s'] for p in peer],
                      'peak_rss_mib': max(p['peak_rss_mib'] for p in peer),
                      'ratio_median_of_rounds': statistics.median(ratios)}
    result['speedup_vs_peer'] = step_s / result['step_s']
    if args.conv_peak:
      flops = result['gflop_per_example'] * result['peer']['examples_per_s']
      peak = torch_conv_peak(args, args.batch, args.res // 4, 128, 10)
      result['peer'].update(achieved_gflop_s=flops, conv3x3_peak_gflop_s=peak, mfu=flops / peak)
  result.update(_environment(jax))
  return result


def _environment(jax) -> dict:
  return {'devices': [str(d) for d in jax.devices()], 'device_kind': jax.devices()[0].device_kind,
          'jax_version': jax.__version__, 'allocator': allocator.name(),
          'xla_flags': os.environ.get('XLA_FLAGS', ''), 'cpu_count': os.cpu_count(),
          'machine': platform.processor() or platform.machine(),
          'date': time.strftime('%Y-%m-%d')}


def bench_pipeline(args) -> dict:
  """Examples/s of the host input pipeline (decode + augment), per core."""
  import grain

  from hgjax.datasets import pipeline
  # The first method that fits the dataset (single- or multi-person) sets the batch layout.
  multi = datasets.DATASETS[args.pipeline].multi_person
  kind = next(k for k, m in methods.METHODS.items() if m.multi_person == multi)
  config = make_config(kind, 1, args.batch, args.res, 'float32')
  config.dataset.name = args.pipeline
  if args.data_dir:
    config.dataset.data_dir = args.data_dir
  ds = pipeline.train_source(config).shuffle(seed=0).repeat()
  if args.pipeline_workers == 1:
    # One core: map the examples in this thread.
    it = iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)))
  else:
    it = iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=args.pipeline_workers,
                                                   prefetch_buffer_size=args.pipeline_workers)))
  for _ in range(args.warmup * args.batch):
    next(it)
  n = args.steps * args.batch
  t, c = time.perf_counter(), time.process_time()
  for _ in range(n):
    next(it)
  wall, cpu = time.perf_counter() - t, time.process_time() - c
  import jax
  return {'pipeline': args.pipeline, 'examples': n, 'workers': args.pipeline_workers,
          'examples_per_s': n / wall, 'examples_per_cpu_s': n / cpu,
          'examples_per_s_per_core': n / wall / args.pipeline_workers,
          'peak_rss_mib': peak_rss_mib(), **_environment(jax)}


def synthetic_ae_maps(rng, size: int, people: int, joints: int, tag_dim: int):
  """AE network outputs for one image: `people` people with every joint visible, so that
  each joint has `people` separate peaks above any threshold below 0.25.

  Each joint's peaks sit in distinct 8 x 8 px cells (jittered by up to 1 px), so no two
  merge. Returns heatmaps [size, size, joints] float32 (Gaussian peaks of height 0.3-1 and
  sigma 2 px on noise below 0.05) and tags [size, size, joints, tag_dim] float32 (person p's
  tag is 2 p + N(0, 0.1) within 3 px of its joints, N(0, 3) elsewhere).
  """
  cells = size // 8
  if people > cells * cells:
    raise ValueError(f'--people {people}: at most {cells * cells} fit a {size} px heatmap')
  yy, xx = np.mgrid[:size, :size].astype(np.float32)
  heat = rng.uniform(0, 0.05, (size, size, joints)).astype(np.float32)
  tags = rng.normal(0, 3, (size, size, joints, tag_dim)).astype(np.float32)
  for k in range(joints):
    cell = rng.choice(cells * cells, people, replace=False)
    centres = 8 * np.stack([cell % cells, cell // cells], -1) + 4 + rng.uniform(-1, 1, (people, 2))
    for p, (u, v) in enumerate(centres):
      d2 = (xx - u) ** 2 + (yy - v) ** 2
      heat[..., k] = np.maximum(heat[..., k], rng.uniform(0.3, 1.0) * np.exp(-d2 / 8))
      near = d2 < 9
      tags[near, k] = 2.0 * p + rng.normal(0, 0.1, (int(near.sum()), tag_dim))
  return heat, tags


def bench_grouping(args) -> dict:
  """Milliseconds per image of `grouping.group` (host AE decoding) on synthetic outputs of
  the COCO AE shapes (512 px input, 128 px maps, 17 joints, flip-test tags; the grouping
  settings of `hgjax.defaults`, those of `experiments/coco_ae.py`): `--people` people (=
  candidates per joint, capped by grouping.top_k)."""
  from hgjax import grouping
  config = make_config('ae', 1, 1, 512, 'float32')
  params = grouping.GroupingParams.from_config(config, config.dataset.num_joints)
  size = config.dataset.image_size // config.dataset.heatmap_stride
  k = config.dataset.num_joints
  d = config.model.tag_dim * (2 if config.eval.flip_test else 1)
  rng = np.random.default_rng(0)
  images = [synthetic_ae_maps(rng, size, args.people, k, d) for _ in range(args.images)]
  loc, _, _ = grouping.candidates(*images[0], params.top_k, params.detection_threshold)
  counts = [len(c) for c in loc]
  for heat, tags in images[:args.warmup]:
    grouping.group(heat, tags, params)
  times, found = [], []
  for heat, tags in images:
    t = time.perf_counter()
    people, _ = grouping.group(heat, tags, params)
    times.append(time.perf_counter() - t)
    found.append(int((people[..., 2] > 0).all(-1).sum()))
  import jax
  return {'grouping_ms_per_image': 1e3 * statistics.median(times),
          'grouping_ms_min': 1e3 * min(times), 'grouping_ms_max': 1e3 * max(times),
          'images': args.images, 'heatmap_size': size, 'joints': k, 'tag_dim': d,
          'people': args.people, 'top_k': params.top_k,
          'candidates_per_joint': statistics.median(counts),
          'people_found_median': statistics.median(found), **_environment(jax)}


def _print_table(result: dict) -> None:
  rows = [(k, v) for k, v in result.items() if not isinstance(v, (dict, list))]
  if 'peer' in result:
    rows += [(f'peer_{k}', v) for k, v in result['peer'].items() if not isinstance(v, list)]
  rows += [(f'profile_ms {k}', v) for k, v in result.get('profile_ms', {}).items()]
  width = max(len(k) for k, _ in rows)
  for k, v in rows:
    print(f'{k:<{width}}  {v:.4g}' if isinstance(v, float) else f'{k:<{width}}  {v}')


def parse_args(argv):
  p = argparse.ArgumentParser(prog='python -m hgjax.bench', description=__doc__.split('\n')[0])
  p.add_argument('--model', choices=list(methods.METHODS), default='shg')
  p.add_argument('--nstack', type=int, default=2)
  p.add_argument('--batch', type=int, default=8)
  p.add_argument('--mode', choices=['train', 'infer'], default='train')
  p.add_argument('--res', type=int, default=256, help='input pixels (square)')
  p.add_argument('--dtype', choices=['float32', 'bfloat16'], default='float32')
  p.add_argument('--features', type=int, help='network width (default: the config\'s)')
  p.add_argument('--depth', type=int, help='hourglass levels (default: the config\'s)')
  p.add_argument('--scan_stacks', type=int, choices=[0, 1],
                 help='config.model.scan_stacks (one compiled stack in a lax.scan); '
                 'default: the config\'s')
  p.add_argument('--remat_stacks', type=int, choices=[0, 1],
                 help='config.model.remat_stacks (recompute stacks in the backward pass); '
                 'default: the config\'s')
  p.add_argument('--steps', type=int, default=5, help='timed steps (per round with --peer)')
  p.add_argument('--warmup', type=int, default=2, help='untimed steps after compilation')
  p.add_argument('--json', help='also write the result as one JSON object to this file')
  p.add_argument('--peer', action='store_true', help='alternate with the PyTorch peer')
  p.add_argument('--rounds', type=int, default=3, help='--peer: alternating rounds')
  p.add_argument('--peer-script', type=Path, default=DEFAULT_PEER)
  p.add_argument('--peer-python', type=Path, default=DEFAULT_PEER_PYTHON)
  p.add_argument('--threads', type=int, default=os.cpu_count(), help='peer torch threads')
  p.add_argument('--conv-peak', action='store_true',
                 help='measure a lone 3x3 conv (XLA, and torch with --peer) and report MFU')
  p.add_argument('--profile', action='store_true',
                 help='profile one more step: XLA:CPU thunk time by category')
  p.add_argument('--allocator', choices=['auto', 'jemalloc', 'default'], default='auto',
                 help='re-exec with / without jemalloc preloaded (auto: leave as is)')
  p.add_argument('--pipeline', choices=['synthetic', 'mpii', 'coco'],
                 help='time the host input pipeline alone')
  p.add_argument('--pipeline-workers', type=int, default=1)
  p.add_argument('--data-dir', help='tfds data_dir for --pipeline mpii|coco')
  p.add_argument('--grouping', action='store_true', help='time AE grouping per image')
  p.add_argument('--people', type=int, default=30, help='--grouping: people per image')
  p.add_argument('--images', type=int, default=20, help='--grouping: timed images')
  return p.parse_args(argv)


def main(argv=None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  if argv is None:
    if args.allocator != 'auto':
      allocator.reexec_with(args.allocator, 'hgjax.bench')
  if args.pipeline:
    result = bench_pipeline(args)
  elif args.grouping:
    result = bench_grouping(args)
  else:
    result = bench_step(args)
  _print_table(result)
  if args.json:
    Path(args.json).write_text(json.dumps(result, indent=1) + '\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
