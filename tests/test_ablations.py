"""Ablations by import: the public API (hgjax.api) and the sweep runner of experiments/ablations.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.ablations import foreground_weight
from experiments.ablations import stacks
from experiments.ablations import sweep
from hgjax import api

REPO = Path(__file__).resolve().parents[1]


def test_importing_the_api_loads_no_jax():
  code = ('import sys; import hgjax.api; '
          'print(sorted(m for m in sys.modules if m == "jax" or m.startswith("hgjax.")))')
  out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                       timeout=120, check=True).stdout
  assert out.strip() == "['hgjax.api']"


@pytest.mark.parametrize('name', ['foreground_weight', 'stacks', 'higher_resolution'])
def test_ablations_run_as_scripts_from_any_directory(name, tmp_path):
  """`python experiments/ablations/NAME.py` (not only `-m`) finds the repository's packages;
  every variant's config loads (a typo in an override fails here, not after hours)."""
  out = subprocess.run([sys.executable, str(REPO / 'experiments' / 'ablations' / f'{name}.py'),
                        '--help'], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       check=True).stdout
  assert out.startswith('usage:')


def test_higher_resolution_variants_load():
  from experiments.ablations import higher_resolution
  vs = higher_resolution.variants(seeds=1)
  assert [v.name for v in vs] == ['with_half_seed0', 'quarter_only_seed0']
  for v in vs:
    config = api.load_config(higher_resolution.BASE, v.overrides)
    assert len(config.loss.heatmap_factors) == len(config.model.deconv_features) + 1


def test_load_config_applies_overrides_with_the_cli_type_rules():
  c = api.load_config('experiments/tiny.py', {'loss.foreground_weight': 20, 'seed': '3',
                                              'optimizer.decay_steps': '(5, 9)',
                                              'optimizer.name': 'sgd'})
  assert c.loss.foreground_weight == 20.0 and isinstance(c.loss.foreground_weight, float)
  assert c.seed == 3 and c.optimizer.decay_steps == (5, 9) and c.optimizer.name == 'sgd'
  assert c.model.features == 16                       # tiny.py's own value is kept
  same = api.load_config('experiments.tiny')          # module name and path load the same
  assert same.to_dict() == api.load_config('experiments/tiny.py').to_dict()
  with pytest.raises(AttributeError, match='num_steps'):   # suggests the existing key
    api.load_config('experiments/tiny.py', {'train.nums_steps': 3})
  with pytest.raises(TypeError, match='batch_size'):
    api.load_config('experiments/tiny.py', {'train.batch_size': 'four'})
  with pytest.raises(TypeError, match='num_steps'):
    api.load_config('experiments/tiny.py', {'train.num_steps': 2.5})
  with pytest.raises(TypeError, match='num_stacks'):
    api.load_config('experiments/tiny.py', {'model.num_stacks': True})
  with pytest.raises(ValueError, match=r'config.model.num_stacks=0 must be > 0'):
    api.load_config('experiments/tiny.py', {'model.num_stacks': 0})
  with pytest.raises(AttributeError):                 # locked: no new keys
    c.train.new_key = 1


def test_heatmap_mse_foreground_weight_closed_form():
  # Target 1 at one pixel of 2x2, prediction 0 -> per-pixel errors (1, 0, 0, 0); weighted by
  # 5 on the foreground: mean = 5 / 4. Plain MSE (weight 1): 1 / 4.
  target = np.zeros((1, 2, 2, 1), np.float32)
  target[0, 0, 0, 0] = 1.0
  pred = np.zeros((1, 1, 2, 2, 1), np.float32)
  ones = np.ones((1, 1), np.float32)
  np.testing.assert_allclose(np.asarray(api.heatmap_mse(pred, target, ones, 5.0)), [[1.25]])
  np.testing.assert_allclose(np.asarray(api.heatmap_mse(pred, target, ones, 1.0)), [[0.25]])


def test_summaries_against_hand_computed_values():
  s = sweep.summarize([0.1, 0.2, 0.6, math.nan])
  assert s['n'] == 3 and s['mean'] == pytest.approx(0.3)
  assert s['std'] == pytest.approx(math.sqrt((0.04 + 0.01 + 0.09) / 2))   # ddof = 1
  assert sweep.format_cell([0.1, 0.2, 0.6]) == '0.300 ± 0.265 [0.100, 0.600]'
  assert sweep.format_cell([0.25]) == '0.250'
  assert sweep.format_cell([math.nan]) == '–'
  assert foreground_weight.report_steps(300, 50) == (100, 200, 300)
  assert foreground_weight.report_steps(4, 4) == (4,)


def test_variant_lists():
  vs = stacks.variants(seeds=2, eval_every=60, log_every=10)
  assert [v.name for v in vs[:5]] == ['s1_seed0', 's2_is_seed0', 's2_nois_seed0', 's4_is_seed0',
                                      's4_nois_seed0']
  assert len(vs) == 10 and vs[5].name == 's1_seed1' and vs[5].overrides['seed'] == 1
  by_name = {v.name: v.overrides for v in vs}
  assert by_name['s4_nois_seed0']['loss.intermediate_supervision'] is False
  assert [by_name[f's{k}_seed0' if k == 1 else f's{k}_is_seed0']['train.eval_every']
          for k in (1, 2, 4)] == [120, 60, 30]
  assert len({v.group for v in vs}) == 5
  fw = foreground_weight.variants(seeds=2, weights=(1.0, 82.0))
  assert [v.name for v in fw] == ['w1_seed0', 'w82_seed0', 'w1_seed1', 'w82_seed1']
  assert fw[1].overrides == {'loss.foreground_weight': 82.0, 'seed': 0}
  assert fw[0].group == fw[2].group == 'plain MSE (weight 1)'


def _write_rows(workdir, rows):
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))


def test_is_finished_by_steps_or_by_time_budget(tmp_path):
  c = api.load_config('experiments/tiny.py', {'train.num_steps': 10, 'train.max_minutes': 0.5})
  w = tmp_path / 'run'
  assert not sweep.is_finished(w, c)                                   # nothing yet
  _write_rows(w, [{'step': 5, 'train/loss': 1.0, 'train/time_s': 10.0},
                  {'step': 5, 'eval/pckh@0.5': 0.1}])
  assert not sweep.is_finished(w, c)               # step 5 of 10, 10 s of the 30 s budget
  _write_rows(w, [{'step': 5, 'train/loss': 1.0, 'train/time_s': 30.0}])
  assert not sweep.is_finished(w, c)               # budget spent but not evaluated yet
  _write_rows(w, [{'step': 5, 'train/loss': 1.0, 'train/time_s': 30.0},
                  {'step': 5, 'eval/pckh@0.5': 0.1}])
  assert sweep.is_finished(w, c)                   # stopped by the budget and evaluated
  _write_rows(w, [{'step': 10, 'train/loss': 1.0, 'train/time_s': 3.0},
                  {'step': 10, 'eval/pckh@0.5': 0.1}])
  assert sweep.is_finished(w, c)                   # all steps
  assert not sweep.is_finished(w, api.load_config(c, {'train.num_steps': 20}))


def test_training_clock_resumes_from_the_logged_time(tmp_path):
  from hgjax import train
  c = api.load_config('experiments/tiny.py', {'train.max_minutes': 0.5})
  _write_rows(tmp_path, [{'step': 10, 'train/loss': 1.0, 'train/time_s': 12.0},
                         {'step': 10, 'eval/pckh@0.5': 0.1},
                         {'step': 20, 'train/loss': 1.0, 'train/time_s': 25.0},
                         {'step': 30, 'train/loss': 1.0, 'train/time_s': 40.0}])
  assert train._TrainClock(c, str(tmp_path), start=0).seconds == 0.0     # a new run
  clock = train._TrainClock(c, str(tmp_path), start=20)   # restored from checkpoint 20
  assert clock.seconds == 25.0 and not clock.spent()       # 25 s of the 30 s budget
  clock.before_s = 30.0
  assert clock.spent()
  assert train._TrainClock(c, str(tmp_path), start=25).seconds == 25.0   # last row <= start
  assert not train._TrainClock(api.load_config(c, {'train.max_minutes': 0.0}), str(tmp_path),
                               start=30).spent()            # no budget


def _result(name, weight, seed, final, tmp_path):
  config = api.load_config('experiments/tiny.py', {'loss.foreground_weight': weight,
                                                    'seed': seed})
  return sweep.RunResult(sweep.Variant(name, {}, foreground_weight.group_name(weight)), config,
                         tmp_path, [50, 100], [final / 2, final], [1.0, 2.0], 60.0, 90.0,
                         False)


def test_verdict_sentences(tmp_path):
  rs = [_result('p0', 1.0, 0, 0.02, tmp_path), _result('w0', 82.0, 0, 0.30, tmp_path),
        _result('v0', 20.0, 0, 0.01, tmp_path),
        _result('p1', 1.0, 1, 0.04, tmp_path), _result('w1', 82.0, 1, 0.26, tmp_path),
        _result('v1', 20.0, 1, 0.06, tmp_path)]
  ratios = {r.variant.name: {100: 0.5} for r in rs}
  ratios['p0'] = ratios['p1'] = {100: 0.99}
  v82, v20 = foreground_weight.verdicts(rs, ratios)
  assert v82.startswith('Weight 82:') and '**holds**' in v82
  assert '0.280 ± 0.028 vs 0.030 ± 0.014' in v82 and '2 of 2' in v82 and '+0.250' in v82
  assert '0.50 vs 0.99' in v82
  assert '**is inconclusive**' in v20 and '1 of 2' in v20     # gains -0.01, +0.02
  table = sweep.markdown_table(rs, report_steps=(50,))
  row = [line for line in table.splitlines() if line.startswith('| foreground weight 82 |')]
  assert row == ['| foreground weight 82 | 2 | 100 | 2.00 ± 0.00 [2.00, 2.00] | 0.140 ± 0.014 '
                 '[0.130, 0.150] | 0.280 ± 0.028 [0.260, 0.300] | 1.0 | 1.5 |']


@pytest.fixture
def compilation_cache(tmp_path):
  """A persistent compilation cache for one test: runs of the same programs (other seeds,
  other step counts) do not compile again. Restores JAX's settings afterwards."""
  import jax
  from jax.experimental.compilation_cache import compilation_cache as cc
  old = (jax.config.jax_compilation_cache_dir,
         jax.config.jax_persistent_cache_min_compile_time_secs)
  sweep.enable_compilation_cache(tmp_path / 'jax_cache')
  cc.reset_cache()
  yield
  jax.config.update('jax_compilation_cache_dir', old[0])
  jax.config.update('jax_persistent_cache_min_compile_time_secs', old[1])
  cc.reset_cache()


def _table_rows(text):
  rows = [line for line in text.splitlines() if line.startswith('| ') and '---' not in line]
  header = [c.strip() for c in rows[0].strip('|').split('|')]
  return [dict(zip(header, [c.strip() for c in r.strip('|').split('|')], strict=True))
          for r in rows[1:]]


def test_two_variant_sweep_writes_table_and_plot_and_resumes(tmp_path, compilation_cache):
  # Smaller than tiny.py (one stack, depth 1, 32 px: compilation and tracing dominate), and a
  # constant schedule: num_steps is not part of the compiled step, so every run below shares
  # one program, compiled once (persistent cache).
  base = api.load_config('experiments/tiny.py', {
      'model.num_stacks': 1, 'model.depth': 1, 'dataset.image_size': 32,
      'optimizer.schedule': 'constant', 'train.num_steps': 4, 'train.eval_every': 2,
      'train.checkpoint_every': 4, 'train.log_every': 2, 'eval.write_predictions': False,
      'train.eval_at_start': False})
  budget_min = 0.005                                  # 0.3 s of training, then stop
  variants = [sweep.Variant('a', {'seed': 0}, group='steps'),
              sweep.Variant('b', {'seed': 1, 'train.num_steps': 10_000,
                                  'train.eval_every': 10_000, 'train.checkpoint_every': 10_000,
                                  'train.max_minutes': budget_min}, group='budget')]
  out = tmp_path / 'sweep'
  results = sweep.run_sweep(base, variants, out, report_steps=(2,), time_axis=True)
  rows = _table_rows((out / 'results.md').read_text())
  assert [r['variant'] for r in rows] == ['steps', 'budget']
  for row, res in zip(rows, results, strict=True):
    logged = api.metric_curve(out / res.variant.name, 'eval/pckh@0.5')
    assert logged == (res.steps, res.values)
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in res.values)
    assert row['eval/pckh@0.5 final'] == f'{res.values[-1]:.3f}'      # the table shows the logs
    assert float(row['CPU min/run']) > 0 and not res.skipped
  a, b = results
  assert a.steps == [2, 4] and rows[0]['eval/pckh@0.5 @ step 2'] == f'{a.values[0]:.3f}'
  # b stopped by its time budget: at a log step far before num_steps, with >= 0.3 s of
  # training logged, a checkpoint and an evaluation there.
  train_rows = [r for r in api.read_metrics(out / 'b') if 'train/loss' in r]
  stop = train_rows[-1]['step']
  assert b.steps == [stop] and 2 <= stop < 10_000 and stop % 2 == 0
  assert train_rows[-1]['train/time_s'] >= 60 * budget_min
  assert all(r['train/time_s'] < 60 * budget_min for r in train_rows[:-1])
  assert (out / 'b' / 'checkpoints' / str(stop)).is_dir()
  assert rows[1]['steps'] == str(stop) and rows[1]['eval/pckh@0.5 @ step 2'] == '–'
  png = (out / 'results.png').read_bytes()
  assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 10_000
  saved = json.loads((out / 'results.json').read_text())
  assert [r['name'] for r in saved] == ['a', 'b']
  # Rerun: both runs are finished, nothing trains again and the logs are unchanged.
  before = {n: (out / n / 'metrics.jsonl').read_text() for n in 'ab'}
  again = sweep.run_sweep(base, variants, out, report_steps=(2,))
  assert all(r.skipped for r in again)
  assert {n: (out / n / 'metrics.jsonl').read_text() for n in 'ab'} == before
  assert [r.values for r in again] == [r.values for r in results]
  # A longer run of 'a' is unfinished: it resumes from the step-4 checkpoint (the logged
  # rows up to step 4 stay as they were) and trains only steps 5 and 6.
  longer = [sweep.Variant('a', {'seed': 0, 'train.num_steps': 6}, group='steps')]
  (res,) = sweep.run_sweep(base, longer, out)
  assert res.steps == [2, 4, 6] and res.values[:2] == a.values
  rows_a = api.read_metrics(out / 'a')
  assert (out / 'a' / 'metrics.jsonl').read_text().startswith(before['a'])
  assert [r['step'] for r in rows_a if 'train/loss' in r] == [2, 4, 6]
