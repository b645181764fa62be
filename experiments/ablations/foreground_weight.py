"""Ablation: plain heatmap MSE vs the foreground-weighted MSE of the hourglass tutorial.

  python -m experiments.ablations.foreground_weight            # defaults: ~20 min, idle CPU

The tutorial seed weights target pixels > 0 by 82 (for 64x64 heatmaps: a sigma-1 Gaussian cut
to a 7x7 window covers 49 of 4096 pixels, 82 ~ 4096 / 49); experiments/synthetic.py uses 20
for its 32x32 maps (~ 1024 / 49). This script trains the synthetic default (2 stacks, 64 wide,
128 px, batch 16, sigma 1, Adam 2e-3 with a cosine schedule over --steps) with foreground weights
--weights (default 1 = plain MSE, 20 and 82), --seeds seeds each, --steps steps each.

The claim under test: the weighting "helps the model escape predicting all zeros". Two
measurements: PCKh@0.5 (mean ± std [min, max] over seeds) at fixed step counts, and the last
stack's training loss relative to the loss of an all-zeros prediction under the same loss on
the same training batches (~1 = the network still sits at the all-zeros solution). results.md
ends with a sentence per weight saying whether the claim holds at the final step: "holds" if
the weighted run beats plain MSE for every seed (paired: a seed fixes the initialisation, the
training data order and the evaluation set, for every weight) by more than 0.05 PCKh on
average, "does not hold" if plain MSE is as good or better on average, else "inconclusive".

Runs one after another in this process (seed-major order, so an interrupted sweep already has
paired runs); rerunning the command skips finished runs and resumes an unfinished one from its
checkpoint. Writes results.md, results.png and results.json into --out.
"""

import argparse
import sys
from pathlib import Path

if __package__ in (None, ''):
  # Run as a script (python experiments/ablations/NAME.py): its folder is on sys.path, not the
  # repository, so `experiments` would not import.
  sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from experiments.ablations import sweep  # noqa: E402
from hgjax import api  # noqa: E402

BASE = 'experiments.synthetic'
# Cost (idle 2-core CPU, ~30 examples/s at batch 16): 300 steps ~ 2.7 min, 4 evaluations of
# 200 images ~ 0.3 min, compilation ~ 0.5 min per new weight -> 6 runs ~ 20 min.
DEFAULTS = {
    # The tutorial's setting: sigma-1 Gaussians (the synthetic default now uses sigma 2 and
    # batch 4, which makes escaping the all-zeros solution easier).
    'targets.sigma': 1.0,
    'train.batch_size': 16,
    'dataset.synthetic_num_eval': 200,
    'optimizer.warmup_steps': 50,
    'train.log_every': 25,
    'eval.write_predictions': False,
}
WEIGHTS = (1.0, 20.0, 82.0)
HOLDS_MARGIN = 0.05          # mean PCKh@0.5 gain that counts as "helps"


def variants(seeds: int, weights: tuple) -> list:
  """Seed-major: every weight of seed 0, then of seed 1, ..."""
  out = []
  for seed in range(seeds):
    for w in weights:
      out.append(sweep.Variant(f'w{w:g}_seed{seed}', {'loss.foreground_weight': w, 'seed': seed},
                               group=group_name(w)))
  return out


def group_name(weight: float) -> str:
  return 'plain MSE (weight 1)' if weight == 1 else f'foreground weight {weight:g}'


def zeros_loss(config, num_batches: int = 4) -> float:
  """Last-stack training loss of an all-zeros prediction under `config.loss`, averaged over
  the first `num_batches` training batches of `config` (the real augmented pipeline)."""
  import jax.numpy as jnp

  from hgjax.datasets import pipeline
  batches = pipeline.train_iterator(config, 0, 1)
  h = config.dataset.image_size // config.dataset.heatmap_stride
  c = config.model.num_outputs
  out = []
  for _ in range(num_batches):
    batch = {k: jnp.asarray(v) for k, v in next(batches).items()}
    zeros = jnp.zeros((batch['image'].shape[0], 1, h, h, c), jnp.float32)
    out.append(float(api.loss(config, zeros, batch)[1]['loss_stack0']))
  return float(np.mean(out))


def loss_ratios(results: list) -> dict:
  """{run name: {step: last-stack train loss / all-zeros loss}} at every logged step."""
  zero_by_weight, out = {}, {}
  for r in results:
    w = r.config.loss.foreground_weight
    if w not in zero_by_weight:
      zero_by_weight[w] = zeros_loss(r.config)
    last = f'train/loss_stack{r.config.model.num_stacks - 1}'
    out[r.variant.name] = {row['step']: row[last] / zero_by_weight[w]
                           for row in api.read_metrics(r.workdir) if last in row}
  return out


def loss_ratio_table(results: list, ratios: dict, steps: tuple) -> str:
  """Markdown: mean ± std [min, max] over seeds of the loss ratio at `steps`."""
  head = ['variant'] + [f'loss / all-zeros loss @ {s}' for s in steps]
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for name, rs in sweep.groups(results).items():
    cells = [sweep.format_cell([ratios[r.variant.name].get(s, np.nan) for r in rs], 2)
             for s in steps]
    lines.append('| ' + ' | '.join([name] + cells) + ' |')
  return '\n'.join(lines) + '\n'


def verdicts(results: list, ratios: dict) -> list:
  """One sentence per weight != 1: does it help escape predicting all zeros (final step)?"""
  by_seed = {}
  for r in results:
    by_seed.setdefault(r.config.loss.foreground_weight, {})[r.config.seed] = r
  plain = by_seed.get(1.0)
  if not plain:
    return ['No plain-MSE runs (weight 1): nothing to compare with.']
  out = []
  for w, runs in by_seed.items():
    if w == 1.0:
      continue
    seeds = sorted(set(runs) & set(plain))
    if not seeds:
      continue
    gains = [runs[s].final - plain[s].final for s in seeds]
    mean_gain = float(np.mean(gains))
    wins = sum(g > 0 for g in gains)
    if wins == len(seeds) and mean_gain > HOLDS_MARGIN:
      verdict = 'holds'
    elif mean_gain <= 0:
      verdict = 'does not hold'
    else:
      verdict = 'is inconclusive'
    step = plain[seeds[0]].final_step
    p = sweep.summarize([plain[s].final for s in seeds])
    q = sweep.summarize([runs[s].final for s in seeds])
    zero_p = sweep.summarize([ratios[plain[s].variant.name].get(step, np.nan) for s in seeds])
    zero_q = sweep.summarize([ratios[runs[s].variant.name].get(step, np.nan) for s in seeds])
    out.append(
        f'Weight {w:g}: the claim "weighting helps escape predicting all zeros" **{verdict}** '
        f'here: at step {step} PCKh@0.5 is {q["mean"]:.3f} ± {q["std"]:.3f} vs '
        f'{p["mean"]:.3f} ± {p["std"]:.3f} for plain MSE (higher in {wins} of {len(seeds)} '
        f'paired seeds, mean gain {mean_gain:+.3f}); last-stack loss / all-zeros loss '
        f'{zero_q["mean"]:.2f} vs {zero_p["mean"]:.2f} for plain MSE.')
  return out


def report_steps(steps: int, eval_every: int) -> tuple:
  """About 1/3, 2/3 and all of `steps`, on the eval grid (and the final step)."""
  grid = {max(eval_every, round(steps * f / eval_every) * eval_every) for f in (1 / 3, 2 / 3)}
  return tuple(sorted(s for s in grid if s < steps) + [steps])


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  sweep.add_common_flags(p, out='runs/ablations/foreground_weight', steps=300, seeds=2,
                         minutes=0.0, minutes_help='optional cap on the training minutes of '
                         'each run (train.max_minutes); 0 = none (compare at equal steps)')
  p.add_argument('--weights', default=','.join(f'{w:g}' for w in WEIGHTS),
                 help='comma-separated foreground weights; 1 = plain MSE')
  p.add_argument('--eval_every', type=int, default=50)
  args = p.parse_args(argv)
  weights = tuple(float(w) for w in args.weights.split(','))
  eval_every = min(args.eval_every, args.steps)
  overrides = dict(DEFAULTS)
  overrides.update({'train.num_steps': args.steps, 'train.eval_every': eval_every,
                    'train.checkpoint_every': eval_every, 'train.max_minutes': args.minutes,
                    'train.log_every': min(DEFAULTS['train.log_every'], eval_every)})
  overrides.update(sweep.parse_sets(args.set))
  base = api.load_config(BASE, overrides)
  out = Path(args.out)
  sweep.enable_compilation_cache(out / 'jax_cache')
  h = base.dataset.image_size // base.dataset.heatmap_stride
  title = (f'Foreground weight: {h}x{h} heatmaps ({base.dataset.image_size} px), '
           f'{base.model.num_stacks} stack(s) x {base.model.features}, weights '
           f'{", ".join(f"{w:g}" for w in weights)}, {args.seeds} seed(s), {args.steps} steps')
  steps = report_steps(args.steps, eval_every)
  results = sweep.run_sweep(base, variants(args.seeds, weights), out, title=title,
                            report_steps=steps)
  ratios = loss_ratios(results)
  log = base.train.log_every
  ratio_steps = tuple(sorted(s for s in {log, 2 * log, 4 * log} | set(steps) if s <= args.steps))
  text = ('\nLast-stack training loss / loss of predicting all zeros on the same training '
          'batches (1 = the all-zeros solution; mean over the logged interval):\n\n'
          + loss_ratio_table(results, ratios, ratio_steps) + '\n'
          + '\n\n'.join(verdicts(results, ratios)) + '\n')
  with open(out / 'results.md', 'a') as f:
    f.write(text)
  print(text, flush=True)


if __name__ == '__main__':
  main()
