"""Ablation: 1, 2 and 4 stacks at equal training time, intermediate supervision on and off.

  python -m experiments.ablations.stacks                       # defaults: ~25 min, idle CPU

Equal training time: every run gets the same wall-clock budget of --minutes training minutes
(`train.max_minutes`: the time of the training steps, summed over resumed sessions; compilation,
evaluation and checkpointing do not count) and stops at the first log step after it, with a
checkpoint and an evaluation; --steps is only a cap. The learning rate is constant after the
warmup (instead of the synthetic default's cosine over train.num_steps), so no run is cut at a
different point of its decay. Wall-clock budgets are only fair on an otherwise idle machine:
run this when nothing else uses the CPU (the table's step counts show the rates reached).

Intermediate supervision (IS) on: the loss sums the MSE of every stack; off: only the last
stack's. With one stack the two are the same run, so 1 stack appears once: five runs per seed.
The model is the synthetic default otherwise (64 wide, depth 3, 128 px, batch 16, foreground
weight 20). Each stack count is evaluated about equally often (every --eval_every * 2 / stacks
steps).

Runs one after another in this process; rerunning the command skips finished runs and resumes
an unfinished one from its checkpoint with the training time it had used. Writes results.md,
results.png (PCKh@0.5 against steps and against training minutes) and results.json into --out.
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

BASE = 'experiments.synthetic'
# Cost (idle 2-core CPU): 5 runs x (3 training minutes + ~1.5 min of compilation and
# evaluation) ~ 23 min for one seed.
DEFAULTS = {
    'train.batch_size': 16,
    'dataset.synthetic_num_eval': 200,
    'optimizer.schedule': 'constant',
    'optimizer.warmup_steps': 50,
    'train.log_every': 10,          # the time budget is checked at log steps
    'eval.write_predictions': False,
}
STACKS = (1, 2, 4)


def variants(seeds: int, eval_every: int, log_every: int) -> list:
  """Seed-major: s1, s2_is, s2_nois, s4_is, s4_nois for seed 0, then seed 1, ...

  eval_every: for 2 stacks; k stacks evaluate every eval_every * 2 / k steps, rounded to a
  multiple of log_every (the training time is logged there).
  """
  out = []
  for seed in range(seeds):
    for k in STACKS:
      every = max(log_every, round(eval_every * 2 / k / log_every) * log_every)
      for inter in ((True,) if k == 1 else (True, False)):
        label = '1 stack' if k == 1 else f'{k} stacks, IS {"on" if inter else "off"}'
        name = f's{k}' + ('' if k == 1 else ('_is' if inter else '_nois')) + f'_seed{seed}'
        out.append(sweep.Variant(name, {
            'model.num_stacks': k, 'loss.intermediate_supervision': inter, 'seed': seed,
            'train.eval_every': every, 'train.checkpoint_every': every}, group=label))
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  sweep.add_common_flags(p, out='runs/ablations/stacks', steps=100_000, seeds=1, minutes=3.0,
                         minutes_help='training-time budget of every run (train.max_minutes)')
  p.add_argument('--eval_every', type=int, default=60,
                 help='eval interval of the 2-stack runs (steps)')
  args = p.parse_args(argv)
  if args.minutes <= 0:
    raise SystemExit(f'--minutes={args.minutes}: the equal-time comparison needs a budget > 0')
  log_every = min(DEFAULTS['train.log_every'], args.steps)
  overrides = dict(DEFAULTS)
  overrides.update({'train.num_steps': args.steps, 'train.max_minutes': args.minutes,
                    'train.log_every': log_every})
  overrides.update(sweep.parse_sets(args.set))
  base = api.load_config(BASE, overrides)
  out = Path(args.out)
  sweep.enable_compilation_cache(out / 'jax_cache')
  title = (f'Stacks at equal training time ({args.minutes:g} min per run), '
           f'{base.dataset.image_size} px, {base.model.features} wide, {args.seeds} seed(s)')
  sweep.run_sweep(base, variants(args.seeds, args.eval_every, base.train.log_every), out,
                  title=title, report_fractions=(1 / 3, 2 / 3), time_axis=True)


if __name__ == '__main__':
  main()
