"""Prints the markdown tables of docs/benchmarks.md from the JSON files in this folder.

  python docs/bench/table.py
"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(name):
  p = HERE / f'{name}.json'
  return json.loads(p.read_text()) if p.exists() else None


def step_rows():
  print('| mode | allocator | hgjax ex/s (step s) | PyTorch ex/s (step s) | ratio (median of '
        'rounds) | hgjax GFLOP/s, MFU | PyTorch GFLOP/s, MFU | hgjax / PyTorch peak RSS MiB |')
  print('|---|---|---|---|---|---|---|---|')
  for mode in ('train', 'infer'):
    for alloc in ('default', 'jemalloc'):
      r = load(f'{mode}_2stack_b8_{alloc}')
      if r is None:
        continue
      p = r['peer']
      print(f"| {mode} | {r['allocator']} | {r['examples_per_s']:.2f} ({r['step_s']:.2f}) | "
            f"{p['examples_per_s']:.2f} ({p['step_s']:.2f}) | {r['speedup_vs_peer']:.2f} "
            f"({p['ratio_median_of_rounds']:.2f}) | {r['achieved_gflop_s']:.0f}, "
            f"{r['mfu']:.2f} of {r['conv3x3_peak_gflop_s']:.0f} | {p['achieved_gflop_s']:.0f}, "
            f"{p['mfu']:.2f} of {p['conv3x3_peak_gflop_s']:.0f} | {r['peak_rss_mib']:.0f} / "
            f"{p['peak_rss_mib']:.0f} |")


def profile_rows():
  r = load('train_2stack_b8_jemalloc')
  if r is None or 'profile_ms' not in r:
    return
  total = sum(r['profile_ms'].values())
  print('| thunk category | ms (summed over threads) | share |')
  print('|---|---|---|')
  for k, v in r['profile_ms'].items():
    print(f'| {k} | {v:.0f} | {100 * v / total:.0f} % |')


def layer_rows():
  r = load('layers')
  if r is None:
    return
  print('| layer ([8, 64, 64, C]) | hgjax forward | PyTorch forward | hgjax fwd + bwd | '
        'PyTorch fwd + bwd |')
  print('|---|---|---|---|---|')
  for name, label in (('conv3x3', '3x3 conv 128 -> 128'), ('conv1x1', '1x1 conv 256 -> 128')):
    j, t = r['hgjax'][name], r['pytorch'][name]
    print(f"| {label} | {1e3 * j['fwd_s']:.0f} ms ({j['fwd_gflop_s']:.0f} GFLOP/s) | "
          f"{1e3 * t['fwd_s']:.0f} ms ({t['fwd_gflop_s']:.0f} GFLOP/s) | "
          f"{1e3 * j['fwd_bwd_s']:.0f} ms ({j['fwd_bwd_gflop_s']:.0f} GFLOP/s) | "
          f"{1e3 * t['fwd_bwd_s']:.0f} ms ({t['fwd_bwd_gflop_s']:.0f} GFLOP/s) |")


def memory_rows():
  print('| run | allocator | step s | peak RSS MiB (GiB) | compile s |')
  print('|---|---|---|---|---|')
  for name in ('train_8stack_b8_scan_remat', 'train_8stack_b8_scan_remat_jemalloc'):
    r = load(name)
    if r is not None:
      print(f"| {r['nstack']} stacks, batch {r['batch']}, scan_stacks={r['scan_stacks']}, "
            f"remat_stacks={r['remat_stacks']} | {r['allocator']} | {r['step_s']:.1f} | "
            f"{r['peak_rss_mib']:.0f} ({r['peak_rss_mib'] / 1024:.2f}) | {r['compile_s']:.0f} |")


def pipeline_rows():
  r = load('pipeline_mpii_1core')
  if r is None:
    return
  print('| examples | wall examples/s | examples per CPU second | peak RSS MiB |')
  print('|---|---|---|---|')
  print(f"| {r['examples']} | {r['examples_per_s']:.0f} | {r['examples_per_cpu_s']:.0f} | "
        f"{r['peak_rss_mib']:.0f} |")


def grouping_rows():
  r = load('grouping_coco_30')
  if r is None:
    return
  print('| images | candidates per joint | people found (max_people) | ms per image: median '
        '(min-max) |')
  print('|---|---|---|---|')
  print(f"| {r['images']} | {r['candidates_per_joint']:.0f} | {r['people_found_median']:.0f} | "
        f"{r['grouping_ms_per_image']:.1f} ({r['grouping_ms_min']:.1f}-{r['grouping_ms_max']:.1f})"
        ' |')


if __name__ == '__main__':
  for rows in (step_rows, profile_rows, layer_rows, memory_rows, pipeline_rows, grouping_rows):
    rows()
    print()
