"""Layer micro-benchmark: one 3x3 conv (128 -> 128) and one 1x1 conv (256 -> 128) on a
[8, 64, 64, C] activation (the hourglass' 64 px level at batch 8), forward and forward +
input gradient + kernel gradient, in hgjax (its `conv_general_dilated` / a Dense matmul) and
in PyTorch (nn.Conv2d, NCHW, 2 threads). Best of 6 calls after a warm-up; GFLOP/s count
2 x multiply-adds per pass.

  python docs/bench/layers.py [--json docs/bench/layers.json]

Each framework runs in its own process (the PyTorch one with /work/torchvenv/bin/python),
both with the allocator of this process (LD_PRELOAD / MALLOC_CONF are inherited).
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TORCH_PYTHON = '/work/torchvenv/bin/python'

JAX_CODE = r'''
import json, sys, time
import jax
sys.path.insert(0, sys.argv[1])
from hgjax import hourglass
B, H = 8, 64
def best(f, *a):
  f = jax.jit(f); jax.block_until_ready(f(*a)); ts = []
  for _ in range(6):
    t = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t)
  return min(ts)
out = {}
for name, cin, cout, k in (('conv3x3', 128, 128, 3), ('conv1x1', 256, 128, 1)):
  x = jax.random.normal(jax.random.key(0), (B, H, H, cin))
  w = jax.random.normal(jax.random.key(1), (k, k, cin, cout)) * 0.05
  g = jax.random.normal(jax.random.key(2), (B, H, H, cout))
  if k == 3:
    f = lambda x, w: hourglass.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  else:
    f = lambda x, w: x @ w[0, 0]
  out[name] = {'fwd_s': best(f, x, w),
               'fwd_bwd_s': best(lambda x, w: jax.vjp(f, x, w)[1](g), x, w)}
print(json.dumps(out))
'''

TORCH_CODE = r'''
import json, time, torch
torch.set_num_threads(2)
B, H = 8, 64
def best(f):
  f(); ts = []
  for _ in range(6):
    t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
  return min(ts)
out = {}
for name, cin, cout, k in (('conv3x3', 128, 128, 3), ('conv1x1', 256, 128, 1)):
  conv = torch.nn.Conv2d(cin, cout, k, padding=k // 2)
  x = torch.randn(B, cin, H, H, requires_grad=True)
  g = torch.randn(B, cout, H, H)
  with torch.no_grad():
    fwd = best(lambda: conv(x))
  out[name] = {'fwd_s': fwd,
               'fwd_bwd_s': best(lambda: torch.autograd.grad(conv(x), (x, conv.weight), g))}
print(json.dumps(out))
'''


def run(python, code, *args):
  out = subprocess.run([python, '-c', code, *args], check=True, capture_output=True, text=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--json')
  args = p.parse_args()
  flops = {'conv3x3': 2 * 8 * 64 * 64 * 128 * 128 * 9, 'conv1x1': 2 * 8 * 64 * 64 * 256 * 128}
  result = {'hgjax': run(sys.executable, JAX_CODE, str(REPO)),
            'pytorch': run(TORCH_PYTHON, TORCH_CODE)}
  for fw, layers in result.items():
    for name, r in layers.items():
      r['fwd_gflop_s'] = flops[name] / r['fwd_s'] / 1e9
      r['fwd_bwd_gflop_s'] = 3 * flops[name] / r['fwd_bwd_s'] / 1e9
      print(f"{fw:8s} {name}: forward {1e3 * r['fwd_s']:6.1f} ms ({r['fwd_gflop_s']:5.1f} GFLOP/s)"
            f", forward + backward {1e3 * r['fwd_bwd_s']:6.1f} ms "
            f"({r['fwd_bwd_gflop_s']:5.1f} GFLOP/s)")
  if args.json:
    Path(args.json).write_text(json.dumps(result, indent=1) + '\n')


if __name__ == '__main__':
  main()
