"""Shared sweep runner for ablations: variants of one base config, trained one after another.

All variants run sequentially in the calling process (one `hgjax.api.train_and_evaluate` call
each; no subprocesses, no parallel runs), each in its own workdir `out_dir/<variant name>`.
Sweeps are resumable: rerunning the same command skips the variants that are finished (their
last training step, `train.num_steps` or the step where `train.max_minutes` ran out, has been
evaluated) and resumes an interrupted one from its latest checkpoint (train_and_evaluate
restores it; parameters, data order and the training clock continue). Ctrl-C / SIGTERM make
the current variant save a checkpoint and stop the sweep.

At the end the sweep writes, into `out_dir`:
  results.md    a markdown table, one row per group of variants (the seeds of one setting are
                one group): the metric's mean ± sample std [min, max] over the group's runs
  results.png   the metric against training steps (and, with `time_axis`, against training
                minutes), one colour per group: the mean over seeds at their common eval steps,
                a min-max band, and one thin line per seed
  results.json  every run's curve, training time and wall/CPU time
"""

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np

from hgjax import api

METRIC = 'eval/pckh@0.5'
TIME = 'train/time_s'      # training seconds (train.max_minutes' clock), logged at log steps


@dataclasses.dataclass(frozen=True)
class Variant:
  """One training run of a sweep.

  name: unique, used as the workdir name (letters, digits, '-', '_', '.').
  overrides: dotted config overrides applied on top of the sweep's base config.
  group: runs with the same group (e.g. several seeds of one setting) are aggregated in the
    table and the plot; '' means the variant is a group of its own.
  """
  name: str
  overrides: dict
  group: str = ''

  @property
  def group_name(self) -> str:
    return self.group or self.name


@dataclasses.dataclass
class RunResult:
  """A finished run as read back from its metrics.jsonl."""
  variant: Variant
  config: object        # the run's locked ConfigDict
  workdir: Path
  steps: list           # eval steps, ascending
  values: list          # metric at those steps
  minutes: list         # training minutes at those steps (NaN where not logged)
  wall_s: float         # wall time of the sweep's calls for this run, summed over sessions
  cpu_s: float          # process CPU time (all threads) of the same calls
  skipped: bool         # already finished before this call

  @property
  def final_step(self) -> int:
    return self.steps[-1] if self.steps else 0

  @property
  def final(self) -> float:
    return self.values[-1] if self.values else math.nan

  @property
  def final_minutes(self) -> float:
    return self.minutes[-1] if self.minutes else math.nan


class SweepInterrupted(Exception):
  """A variant was preempted (SIGINT/SIGTERM); its checkpoint is saved, rerun to resume."""


def value_at(result: RunResult, step: int) -> float:
  """Metric of `result` at eval step `step`, NaN if it was not evaluated there."""
  return dict(zip(result.steps, result.values, strict=True)).get(step, math.nan)


def value_near_minutes(result: RunResult, minutes: float) -> float:
  """Metric at the eval whose training time is closest to `minutes` (NaN if none)."""
  t = np.asarray(result.minutes, np.float64)
  if not np.isfinite(t).any():
    return math.nan
  return result.values[int(np.nanargmin(np.abs(t - minutes)))]


def is_finished(workdir, config, metric: str = METRIC) -> bool:
  """Whether `workdir` holds a finished run of `config`: its last training step was evaluated,
  and that step is `train.num_steps` or its logged training time used up `train.max_minutes`."""
  if not (Path(workdir) / 'metrics.jsonl').exists():
    return False
  rows = api.read_metrics(workdir)
  train_rows = [r for r in rows if 'train/loss' in r]
  if not train_rows:
    return False
  last = max(train_rows, key=lambda r: r['step'])
  if not any(r['step'] == last['step'] and metric in r for r in rows):
    return False
  budget_s = 60.0 * config.train.max_minutes
  return (last['step'] >= config.train.num_steps
          or (budget_s > 0 and last.get(TIME, 0.0) >= budget_s))


def read_result(variant: Variant, config, workdir, metric: str = METRIC,
                skipped: bool = False) -> RunResult:
  """The eval curve of a run, with the training time at each eval step."""
  rows = api.read_metrics(workdir)
  times = {r['step']: r[TIME] for r in rows if TIME in r}
  steps, values = api.metric_curve(workdir, metric)
  timing = _timing(workdir)
  return RunResult(variant, config, Path(workdir), steps, values,
                   [times.get(s, math.nan) / 60 for s in steps], timing['wall_s'],
                   timing['cpu_s'], skipped)


def _timing(workdir) -> dict:
  path = Path(workdir) / 'sweep_time.json'
  return json.loads(path.read_text()) if path.exists() else {'wall_s': 0.0, 'cpu_s': 0.0}


def run_variant(base_config, variant: Variant, out_dir, metric: str = METRIC) -> RunResult:
  """Trains (or resumes, or skips if finished) one variant in `out_dir/<name>`."""
  config = api.load_config(base_config, variant.overrides)
  workdir = Path(out_dir) / variant.name
  skipped = is_finished(workdir, config, metric)
  if skipped:
    print(f'[sweep] {variant.name}: finished earlier, skipped', flush=True)
    return read_result(variant, config, workdir, metric, skipped=True)
  print(f'[sweep] {variant.name}: training in {workdir} ({variant.overrides})', flush=True)
  t0, c0 = time.perf_counter(), time.process_time()
  out = api.train_and_evaluate(config, workdir)
  if 'preempted_at_step' not in out and not is_finished(workdir, config, metric):
    # Killed after the final checkpoint but before its evaluation was logged.
    api.evaluate_checkpoint(config, workdir)
  timing = _timing(workdir)
  timing['wall_s'] += time.perf_counter() - t0
  timing['cpu_s'] += time.process_time() - c0
  (workdir / 'sweep_time.json').write_text(json.dumps(timing))
  if 'preempted_at_step' in out:
    raise SweepInterrupted(f'{variant.name} stopped at step {out["preempted_at_step"]}; '
                           'rerun the same command to resume')
  if not is_finished(workdir, config, metric):
    raise RuntimeError(f'{workdir}: training returned but the run is not finished '
                       f'(no {metric} at its last training step)')
  return read_result(variant, config, workdir, metric)


def run_sweep(base_config, variants: list, out_dir, *, metric: str = METRIC,
              report_steps: tuple = (), report_fractions: tuple = (), title: str = '',
              time_axis: bool = False) -> list:
  """Runs `variants` one after another in this process, then writes results.md / .png /
  .json into `out_dir`.

  Args:
    base_config: anything `api.load_config` takes (a file path, module name, or ConfigDict).
    variants: list of `Variant`; every config is loaded and checked before any training.
    report_steps: eval steps shown as table columns (besides each run's final eval).
    report_fractions: fractions of the training-time budget (`train.max_minutes`) shown as
      table columns: the eval whose logged training time is closest to fraction * budget.
    time_axis: add a plot panel with x = training minutes.
  Returns the `RunResult`s in variant order. Raises SweepInterrupted after a preemption.
  """
  names = [v.name for v in variants]
  if len(set(names)) != len(names):
    raise ValueError(f'variant names must be unique: {names}')
  for v in variants:   # fail on a typo in the last variant before training the first
    api.load_config(base_config, v.overrides)
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  t0, c0 = time.perf_counter(), time.process_time()
  results = []
  for i, v in enumerate(variants):
    print(f'[sweep] variant {i + 1}/{len(variants)}', flush=True)
    results.append(run_variant(base_config, v, out_dir, metric))
  print(f'[sweep] done in {time.perf_counter() - t0:.0f} s wall, '
        f'{time.process_time() - c0:.0f} s CPU (this session)', flush=True)
  write_outputs(results, out_dir, metric=metric, report_steps=report_steps,
                report_fractions=report_fractions, title=title, time_axis=time_axis)
  return results


def enable_compilation_cache(directory) -> None:
  """Turns on JAX's persistent compilation cache in `directory` (process-wide).

  Variants that differ only in values that do not change the compiled programs (seeds) then
  compile once, and a resumed sweep does not compile again.
  """
  import jax
  jax.config.update('jax_compilation_cache_dir', str(directory))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


def add_common_flags(parser: argparse.ArgumentParser, *, out: str, steps: int, seeds: int,
                     minutes: float, minutes_help: str) -> None:
  """--out, --steps, --seeds, --minutes and --set KEY=VALUE (repeatable config overrides)."""
  parser.add_argument('--out', default=out, help='output dir: one workdir per run, results.*')
  parser.add_argument('--steps', type=int, default=steps, help='training steps per run (cap)')
  parser.add_argument('--seeds', type=int, default=seeds, help='runs (seeds 0..n-1) per setting')
  parser.add_argument('--minutes', type=float, default=minutes, help=minutes_help)
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                      help='extra config override, e.g. --set model.features=32 (repeatable)')


def parse_sets(pairs: list) -> dict:
  """['a.b=1', ...] -> {'a.b': '1'}; values are parsed by `api.apply_overrides`."""
  out = {}
  for kv in pairs:
    if '=' not in kv:
      raise ValueError(f'--set {kv!r}: expected KEY=VALUE, e.g. model.features=32')
    key, value = kv.split('=', 1)
    out[key.strip()] = value.strip()
  return out


# --- aggregation and outputs ----------------------------------------------------------------

def groups(results: list) -> dict:
  """{group name: [RunResult, ...]} in first-seen order."""
  out = {}
  for r in results:
    out.setdefault(r.variant.group_name, []).append(r)
  return out


def summarize(values) -> dict:
  """mean, sample std (ddof=1; 0 for one value), min, max and count of the finite values."""
  v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
  if v.size == 0:
    return {'mean': math.nan, 'std': math.nan, 'min': math.nan, 'max': math.nan, 'n': 0}
  return {'mean': float(v.mean()), 'std': float(v.std(ddof=1)) if v.size > 1 else 0.0,
          'min': float(v.min()), 'max': float(v.max()), 'n': int(v.size)}


def format_cell(values, digits: int = 3) -> str:
  """'0.412' for one run; '0.412 ± 0.031 [0.380, 0.450]' for several; '–' for none."""
  s = summarize(values)
  if s['n'] == 0:
    return '–'
  f = f'.{digits}f'
  if s['n'] == 1:
    return format(s['mean'], f)
  return (f'{s["mean"]:{f}} ± {s["std"]:{f}} [{s["min"]:{f}}, {s["max"]:{f}}]')


def _range(values) -> str:
  lo, hi = min(values), max(values)
  return f'{lo}' if lo == hi else f'{lo}–{hi}'


def markdown_table(results: list, metric: str = METRIC, report_steps: tuple = (),
                   report_fractions: tuple = ()) -> str:
  """One row per group: runs, final steps, training minutes, the metric at `report_steps`,
  at `report_fractions` of the time budget and at the final eval, and the mean wall and CPU
  minutes per run (compilation and evaluation included)."""
  head = (['variant', 'runs', 'steps', 'train min'] + [f'{metric} @ step {s}' for s in report_steps]
          + [f'{metric} @ {f:.2g} of time' for f in report_fractions]
          + [f'{metric} final', 'wall min/run', 'CPU min/run'])
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for name, rs in groups(results).items():
    row = [name, str(len(rs)), _range([r.final_step for r in rs]),
           format_cell([r.final_minutes for r in rs], 2)]
    row += [format_cell([value_at(r, s) for r in rs]) for s in report_steps]
    row += [format_cell([value_near_minutes(r, f * r.config.train.max_minutes) for r in rs])
            for f in report_fractions]
    row.append(format_cell([r.final for r in rs]))
    row.append(f'{np.mean([r.wall_s for r in rs]) / 60:.1f}')
    row.append(f'{np.mean([r.cpu_s for r in rs]) / 60:.1f}')
    lines.append('| ' + ' | '.join(row) + ' |')
  return '\n'.join(lines) + '\n'


def _group_mean(rs: list, x_of) -> tuple:
  """(x, mean, min, max) over the runs at their common eval steps; x = mean of x_of(run)."""
  common = sorted(set.intersection(*(set(r.steps) for r in rs)))
  xs, ys = [], []
  for r in rs:
    at = dict(zip(r.steps, zip(x_of(r), r.values, strict=True), strict=True))
    xs.append([at[s][0] for s in common])
    ys.append([at[s][1] for s in common])
  xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
  return xs.mean(0), ys.mean(0), ys.min(0), ys.max(0)


def plot(results: list, path, metric: str = METRIC, title: str = '',
         time_axis: bool = False) -> None:
  """PNG of `metric` against steps (and against training minutes if `time_axis`)."""
  # The object-oriented Agg API: no pyplot, so no global backend state is touched.
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  axes_x = [('training step', lambda r: r.steps)]
  if time_axis:
    axes_x.append(('training minutes (compilation and evaluation excluded)',
                   lambda r: r.minutes))
  fig = Figure(figsize=(6.4 * len(axes_x), 4.6))
  FigureCanvasAgg(fig)
  axes = [fig.add_subplot(1, len(axes_x), i + 1) for i in range(len(axes_x))]
  for k, (name, rs) in enumerate(groups(results).items()):
    color = f'C{k % 10}'
    for ax, (_, x_of) in zip(axes, axes_x, strict=True):
      if len(rs) == 1:
        ax.plot(x_of(rs[0]), rs[0].values, marker='o', ms=3, color=color, label=name)
        continue
      for r in rs:
        ax.plot(x_of(r), r.values, color=color, lw=0.6, alpha=0.4)
      x, mean, lo, hi = _group_mean(rs, x_of)
      ax.plot(x, mean, marker='o', ms=3, color=color, label=f'{name} (mean of {len(rs)})')
      ax.fill_between(x, lo, hi, color=color, alpha=0.15)
  budgets = {r.config.train.max_minutes for r in results} - {0.0}
  if time_axis and len(budgets) == 1:
    axes[1].axvline(budgets.pop(), color='0.5', ls='--', lw=0.8, label='time budget')
  for ax, (label, _) in zip(axes, axes_x, strict=True):
    ax.set_xlabel(label)
    ax.set_ylabel(metric)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def write_outputs(results: list, out_dir, metric: str = METRIC, report_steps: tuple = (),
                  report_fractions: tuple = (), title: str = '', time_axis: bool = False) -> None:
  """results.md (title + table), results.png and results.json in `out_dir`."""
  out_dir = Path(out_dir)
  table = markdown_table(results, metric, report_steps, report_fractions)
  (out_dir / 'results.md').write_text((f'{title}\n\n' if title else '') + table)
  plot(results, out_dir / 'results.png', metric, title, time_axis)
  (out_dir / 'results.json').write_text(json.dumps([
      {'name': r.variant.name, 'group': r.variant.group_name, 'overrides': r.variant.overrides,
       'steps': r.steps, 'values': r.values, 'minutes': r.minutes, 'final': r.final,
       'wall_s': r.wall_s, 'cpu_s': r.cpu_s} for r in results], indent=1))
  print(table, flush=True)
  print(f'[sweep] wrote {out_dir}/results.md, results.png, results.json', flush=True)
