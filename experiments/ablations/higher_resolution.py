"""Ablation: HigherHRNet with and without its 1/2-resolution branch, at equal training time.

  python -m experiments.ablations.higher_resolution          # defaults: ~25 min, idle CPU

The paper's claim (Cheng et al., CVPR 2020, Table 4 and Fig. 1): the higher-resolution branch
(a transposed conv and BasicBlocks after the 1/4 output, heatmaps at 1/2) improves AP, most for
medium / small people (APm). Both runs train `experiments/synthetic_higherhrnet.py` (scenes of
small figures, 0.25-0.6 of the 128 px image) for the same --minutes of training time; without
the branch the network ends at the 1/4 output (heatmaps and tags), is trained on it alone and
groups its 1/4 maps. The learning rate is the config's cosine over the same budget. Writes
results.md, results.png (AP against steps and training minutes) and results.json into --out;
the table also has APm from each run's final evaluation (results.md, last column).
"""

import argparse
import sys
from pathlib import Path

if __package__ in (None, ''):
  # Run as a script (python experiments/ablations/NAME.py): its folder is on sys.path, not the
  # repository, so `experiments` would not import.
  sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments.ablations import sweep  # noqa: E402
from hgjax import api  # noqa: E402

BASE = 'experiments.synthetic_higherhrnet'
METRIC = 'eval/AP'
WITH = {'model.deconv_features': (32,), 'model.deconv_cat_output': (True,),
        'loss.heatmap_factors': (1.0, 1.0)}
WITHOUT = {'model.deconv_features': (), 'model.deconv_cat_output': (),
           'loss.heatmap_factors': (1.0,)}


def variants(seeds: int) -> list:
  """Seed-major: with and without the branch for seed 0, then seed 1, ..."""
  out = []
  for seed in range(seeds):
    out.append(sweep.Variant(f'with_half_seed{seed}', {**WITH, 'seed': seed},
                             group='1/4 + 1/2 outputs (HigherHRNet)'))
    out.append(sweep.Variant(f'quarter_only_seed{seed}', {**WITHOUT, 'seed': seed},
                             group='1/4 output only'))
  return out


def final_apm(results: list) -> dict:
  """{run name: eval/APm at its last evaluation}."""
  return {r.variant.name: api.final_metric(r.workdir, 'eval/APm') for r in results}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  sweep.add_common_flags(p, out='runs/ablations/higher_resolution', steps=100_000, seeds=1,
                         minutes=10.0,
                         minutes_help='training-time budget of every run (train.max_minutes)')
  args = p.parse_args(argv)
  overrides = {'train.num_steps': args.steps, 'train.max_minutes': args.minutes,
               'train.eval_every': 1000, 'train.checkpoint_every': 1000}
  overrides.update(sweep.parse_sets(args.set))
  base = api.load_config(BASE, overrides)
  out = Path(args.out)
  sweep.enable_compilation_cache(out / 'jax_cache')
  title = (f'HigherHRNet with and without the 1/2-resolution branch, {args.minutes:g} training '
           f'minutes per run, {base.dataset.image_size} px scenes, {args.seeds} seed(s)')
  results = sweep.run_sweep(base, variants(args.seeds), out, metric=METRIC, title=title,
                            report_fractions=(1 / 3, 2 / 3), time_axis=True)
  apm = final_apm(results)
  with open(out / 'results.md', 'a') as f:
    f.write('\nFinal APm: ' + ', '.join(f'{k} {v:.3f}' for k, v in apm.items()) + '\n')


if __name__ == '__main__':
  main()
