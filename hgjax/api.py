"""The public Python API of hgjax: what a research script needs to change a config, train,
evaluate and read the results back.

Importing this module has no side effects and is cheap: it imports neither JAX nor the
training code (each function imports what it needs when called), so it never initialises a
JAX backend (multi-host scripts can call `jax.distributed.initialize` afterwards).

Example (an ablation in four lines):

  from hgjax import api
  config = api.load_config('experiments/synthetic.py', {'loss.foreground_weight': 20.0,
                                                        'train.num_steps': 500})
  metrics = api.train_and_evaluate(config, '/tmp/fg20')     # resumes if /tmp/fg20 has a run
  steps, pckh = api.metric_curve('/tmp/fg20', 'eval/pckh@0.5')

Conventions (see docs/design.md): keypoints are float32 [..., K, 3] = (x, y, v) in 0-based
input pixels; model outputs are NHWC maps [B, S (stacks), h, w, C] with h = H / stride.
Method-specific functions (`build_model`, `loss`, `encode`, `decode`, `parse_heatmaps`)
dispatch through the method table `hgjax.methods.METHODS` on `config.model.kind`.
"""

import ast
import importlib
import importlib.util
import math
import types
from pathlib import Path

__all__ = [
    'load_config', 'apply_overrides', 'config_problems', 'train_and_evaluate',
    'evaluate_checkpoint', 'build_model', 'loss', 'encode', 'decode', 'parse_heatmaps',
    'heatmap_mse', 'render_heatmaps', 'read_metrics', 'metric_curve', 'final_metric',
]


# --- configs -------------------------------------------------------------------------------

def load_config(config, overrides: dict | None = None):
  """A locked `ml_collections.ConfigDict` from an experiment, with dotted overrides applied.

  Args:
    config: an experiment file path ('experiments/synthetic.py'), a module name
      ('experiments.synthetic'), a module with `get_config()`, or a ConfigDict (copied).
    overrides: {'section.key': value}, e.g. {'loss.foreground_weight': 20.0}. Applied in
      order with the CLI's rules (`--config.section.key=value`): see `apply_overrides`.
  Returns:
    The locked config (unknown keys cannot be added). Raises ValueError if a value is invalid
    (the checks of `config_check`, except those that depend on the device count, which
    `train_and_evaluate` makes).
  """
  import ml_collections
  if isinstance(config, ml_collections.ConfigDict):
    cfg = ml_collections.ConfigDict(config.to_dict())
  else:
    cfg = _config_module(config).get_config()
  cfg.lock()
  apply_overrides(cfg, overrides or {})
  problems = config_problems(cfg)
  if problems:
    raise ValueError('invalid config:\n  ' + '\n  '.join(problems))
  return cfg


def apply_overrides(config, overrides: dict) -> None:
  """Sets `config.a.b = value` for every {'a.b': value}, in place, with the CLI's checks.

  Unknown keys raise AttributeError naming the closest existing key (the config must be
  locked, as `load_config` returns it). Values keep the field's type as on the command line:
  int -> float is widened, float -> int, str -> int etc. raise TypeError. A str given for a
  non-str field is parsed as a Python literal first ('3' -> 3, '(1, 2)' -> (1, 2)), so
  overrides can come straight from command-line strings.
  """
  for dotted, value in overrides.items():
    *parents, leaf = dotted.split('.')
    node = config
    for part in parents:
      node = getattr(node, part)
    current = getattr(node, leaf)   # AttributeError with a suggestion for unknown keys
    if isinstance(value, str) and not isinstance(current, str) and current is not None:
      try:
        value = ast.literal_eval(value)
      except (ValueError, SyntaxError):
        raise TypeError(f'config.{dotted}: cannot parse {value!r} as '
                        f'{type(current).__name__}') from None
    if isinstance(value, bool) and not isinstance(current, bool):
      # ConfigDict accepts a bool for an int field (bool subclasses int); the CLI does not,
      # and a stack count of True is always a mistake.
      raise TypeError(f'config.{dotted}={value!r}: expected {type(current).__name__}')
    try:
      setattr(node, leaf, value)
    except TypeError as e:
      raise TypeError(f'config.{dotted}={value!r}: {e}') from None


def config_problems(config) -> list:
  """Every invalid value of `config` as a message (empty if valid), without touching JAX.

  The batch-size-vs-device-count check is made by `train_and_evaluate` itself.
  """
  from hgjax import config_check
  return config_check.problems(config, device_count=1)


def _config_module(config) -> types.ModuleType:
  if isinstance(config, types.ModuleType):
    return config
  text = str(config)
  if text.endswith('.py'):
    path = Path(text).resolve()
    if not path.exists():
      raise FileNotFoundError(f'config file {text} does not exist')
    # Import as 'experiments.<name>' when it lives in an experiments package, so its own
    # `from experiments import defaults` resolves to the same modules as a module-name load.
    if path.parent.name == 'experiments' and (path.parent / '__init__.py').exists():
      try:
        module = importlib.import_module(f'experiments.{path.stem}')
        if Path(module.__file__).resolve() == path:
          return module
      except ImportError:
        pass
    spec = importlib.util.spec_from_file_location(f'_hgjax_config_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
  return importlib.import_module(text)


# --- training and evaluation ----------------------------------------------------------------

def train_and_evaluate(config, workdir) -> dict:
  """Trains `config` in `workdir` and evaluates every `config.train.eval_every` steps.

  Stops after `config.train.num_steps` steps or `config.train.max_minutes` of training time
  (if > 0; compilation, evaluation and checkpointing excluded), whichever comes first, and
  saves a checkpoint and evaluates there. Resumes from the latest checkpoint in `workdir` (so
  rerunning after an interruption continues, with the training time already used; a finished
  run returns at once without evaluating again). Writes `workdir/metrics.jsonl` (training rows
  carry 'train/time_s'), TensorBoard events and checkpoints.
  Returns the metrics of the last evaluation run by this call, e.g. {'eval/pckh@0.5': 0.62,
  ...} (fractions in [0, 1]); {} if it ran none; {'preempted_at_step': s} after SIGTERM.
  """
  from hgjax import train
  return train.train_and_evaluate(config, str(workdir))


def evaluate_checkpoint(config, workdir) -> dict:
  """Evaluates the latest checkpoint in `workdir` (or `config.eval.checkpoint`), appends the
  metrics to `workdir/metrics.jsonl` at the checkpoint's step and returns them."""
  from hgjax import train
  return train.evaluate_checkpoint(config, str(workdir))


# --- methods: models, losses, codecs ---------------------------------------------------------

def build_model(config):
  """The flax linen module of `config.model` (through its method, `config.model.kind`).

  `model.apply(variables, images, train=False)`: images float32 [B, H, W, 3], normalised as the
  method's `normalize_images` does (SHG, AE: RGB / 255) -> outputs float32 [B, S, H / 4, W / 4,
  C] (S = num_stacks, C = num_outputs). `model.init(rng, images, train=False)` gives
  {'params', 'batch_stats'}.
  """
  from hgjax import methods
  return methods.method_for(config).build_model(config)


def loss(config, outputs, batch) -> tuple:
  """The training loss of `config`'s method: outputs [B, S, h, w, C]; batch {'keypoints'
  [B, P, K, 3] input pixels, optional 'mask' [B, h, w]} -> (total scalar, {name: scalar}), the
  terms `train_and_evaluate` logs as 'train/<name>' (e.g. 'loss_stack0')."""
  from hgjax import methods
  method = methods.method_for(config)
  settings = method.settings(config)
  return method.loss(outputs, method.render_targets(batch, settings), settings)


def encode(config, keypoints, image_hw) -> dict:
  """Ideal network outputs of people keypoints [P, K, 3] (input pixels) in an image of size
  image_hw = (H, W): a dict of numpy maps [H / stride, W / stride, C] named as the method's
  outputs (SHG: 'heatmaps'; AE: 'heatmaps' and 'tags', each person's tag its index)."""
  from hgjax import methods
  return methods.method_for(config).encode(config, keypoints, image_hw)


def decode(config, maps: dict, image_hw) -> tuple:
  """The people in maps of one image (as `encode` returns them, or one stage of outputs split
  by the method): (people [N, K, 3] (x, y, score) in input pixels, person scores [N]).
  `decode(config, encode(config, people, hw), hw)` gives the people back (tests/test_methods.py)."""
  from hgjax import methods
  return methods.method_for(config).decode(config, maps, image_hw)


def parse_heatmaps(maps_a, maps_b, style: str, config=None) -> tuple:
  """The grouping step alone, on the official code bases' layouts.

  style: a `config.model.kind`. 'ae': the Associative Embedding grouping, 'higherhrnet': the
  official HigherHRNet `HeatmapParser` ('shg' takes the argmax of each heatmap). maps_a:
  heatmaps [K, H, W]; maps_b: tags [K, H, W] or [K, H, W, L]. config: the grouping settings
  (`config.grouping`, `config.eval.refine`); None = `hgjax.defaults`, the reference parsers'
  values (detection threshold 0.1, tag threshold 1, top 30 per joint, refinement).
  Returns 'ae', 'shg': (people [N, K, 3] (x, y, score) in heatmap pixels, person scores [N]),
  best first; 'higherhrnet': exactly the official parser's (people [N, K, 3 + L] (x, y, score,
  tags) with pixel centres at i + 0.5, scores [N]) in its person order.
  """
  from hgjax import defaults
  from hgjax import methods
  if config is None:
    config = defaults.get_config()
  return methods.method_named(style).parse(config, maps_a, maps_b)


def heatmap_mse(pred, target, joint_weight, foreground_weight: float):
  """Masked, optionally foreground-weighted squared error of every stack.

  pred [B, S, h, w, K]; target [B, h, w, K]; joint_weight [B, K] or [B, h, w, K] (0 = ignore);
  foreground_weight: weight of pixels where target > 0 (1.0 = plain MSE; the hourglass
  tutorial uses 82 for 64x64 maps, i.e. about h * w / 49 for a 7x7 blob).
  Returns [B, S]: mean over pixels and joints of weight * (pred - target)^2.
  """
  from hgjax import losses
  return losses.heatmap_mse(pred, target, joint_weight, foreground_weight)


def render_heatmaps(keypoints, heatmap_size: tuple, stride: int, sigma: float):
  """Gaussian targets: keypoints [B, P, K, 3] (input pixels) -> heatmaps [B, h, w, K] in [0, 1],
  max over people, zero outside a (6 sigma + 1)-wide window (sigma in grid pixels)."""
  from hgjax import targets
  return targets.render_heatmaps(keypoints, heatmap_size, stride, sigma)


# --- results --------------------------------------------------------------------------------

def read_metrics(workdir) -> list:
  """Rows of `workdir/metrics.jsonl` in file order: dicts {'step': int, name: float, ...}.
  Training rows hold 'train/...' scalars, evaluation rows 'eval/...' ones."""
  from hgjax import metric_writer
  return metric_writer.read_metrics(workdir)


def metric_curve(workdir, name: str) -> tuple:
  """(steps, values) of metric `name` over a run, as two lists in step order (the last row
  wins if a step was logged twice, e.g. re-evaluated)."""
  by_step = {}
  for row in read_metrics(workdir):
    if name in row:
      by_step[row['step']] = row[name]
  steps = sorted(by_step)
  return steps, [by_step[s] for s in steps]


def final_metric(workdir, name: str, step: int | None = None) -> float:
  """Value of `name` at `step` (default: the last step that logged it); NaN if absent."""
  steps, values = metric_curve(workdir, name)
  if not steps:
    return math.nan
  if step is None:
    return values[-1]
  return dict(zip(steps, values, strict=True)).get(step, math.nan)
