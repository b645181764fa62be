"""Config validation before any work: every problem in one message, with the valid choices.

Unknown keys and wrong types are already refused by ml_collections (locked ConfigDict, typed
fields); this checks values.
"""

import jax

from hgjax import datasets
from hgjax import methods
from hgjax import paf_parser
from hgjax import paf_targets

CHOICES = {
    'dataset.name': tuple(datasets.DATASETS),
    'dataset.on_bad_example': ('error', 'skip'),
    'targets.convention': ('continuous',),
    'model.kind': tuple(methods.METHODS),
    'model.dtype': ('float32', 'bfloat16'),
    'loss.push_form': ('exp', 'margin'),
    'optimizer.name': ('rmsprop', 'adam', 'adamw', 'sgd'),
    'optimizer.schedule': ('constant', 'step', 'cosine'),
    'optimizer.pace': ('steps', 'budget'),
    'train.on_nonfinite': ('error', 'skip'),
    'eval.refine': ('none', 'quarter', 'taylor', 'dark'),
    'targets.openpose_heatmap_mode': paf_targets.CONFIDENCE_MODES,
    'targets.openpose_paf_mode': paf_targets.PAF_MODES,
    'grouping.openpose_style': tuple(paf_parser.STYLES),
}
POSITIVE = ('dataset.image_size', 'dataset.heatmap_stride', 'dataset.max_people',
            'dataset.num_joints', 'targets.sigma', 'model.num_stacks', 'model.features',
            'model.depth', 'optimizer.learning_rate', 'train.batch_size', 'train.num_steps',
            'train.log_every', 'train.checkpoint_every', 'train.keep_checkpoints',
            'train.eval_every', 'eval.batch_size', 'model.tag_dim')


def _get(config, dotted):
  for part in dotted.split('.'):
    config = config[part]
  return config


def problems(config, device_count: int) -> list:
  """Every invalid value of `config`, as messages naming the key, value and what is valid."""
  out = []
  for key, valid in CHOICES.items():
    value = _get(config, key)
    if value not in valid:
      out.append(f'config.{key}={value!r} is not one of {", ".join(map(repr, valid))}')
  for key in POSITIVE:
    value = _get(config, key)
    if not value > 0:
      out.append(f'config.{key}={value!r} must be > 0')
  if config.train.batch_size % device_count:
    out.append(f'config.train.batch_size={config.train.batch_size} is not divisible by the '
               f'{device_count} devices')
  if config.optimizer.pace == 'budget' and not config.train.max_minutes > 0:
    out.append(f"config.optimizer.pace='budget' needs config.train.max_minutes > 0, got "
               f'{config.train.max_minutes!r}')
  a = config.augment
  if not 0 < a.scale_min <= a.scale_max:
    out.append(f'config.augment.scale_min={a.scale_min}, scale_max={a.scale_max}: need '
               '0 < scale_min <= scale_max')
  if config.loss.foreground_weight <= 0:
    out.append(f'config.loss.foreground_weight={config.loss.foreground_weight} must be > 0')
  try:
    method, dataset = methods.method_for(config), datasets.dataset_for(config)
  except ValueError:    # an unknown kind or name, reported above with the valid choices
    return out
  out.extend(_method_problems(config, method, dataset))
  return out


def _method_problems(config, method, dataset) -> list:
  """The output width and the single/multi-person match of the method and the dataset."""
  out = []
  d, kind = config.dataset, config.model.kind
  if d.heatmap_stride != method.target_stride:
    out.append(f'config.dataset.heatmap_stride={d.heatmap_stride} must be '
               f'{method.target_stride} (model.kind={kind!r}: its output stride)')
  multiple = method.input_multiple(config)
  if d.image_size % multiple:
    out.append(f'config.dataset.image_size={d.image_size} must be divisible by {multiple} '
               f'(model.kind={kind!r}: its stride times its downsampling)')
  needed = method.num_outputs(config)
  if config.model.num_outputs < needed:
    out.append(f'config.model.num_outputs={config.model.num_outputs} must be >= {needed} '
               f'(dataset.num_joints={d.num_joints}, model.kind={kind!r})')
  if method.multi_person != dataset.multi_person:
    fitting = [k for k, m in methods.METHODS.items() if m.multi_person == dataset.multi_person]
    people = 'multi-person' if dataset.multi_person else 'single-person'
    out.append(f'config.model.kind={kind!r} with config.dataset.name={d.name!r}: {people} data '
               f'needs model.kind in {", ".join(map(repr, fitting))}')
  return out


def validate(config, device_count: int | None = None) -> None:
  """Raises ValueError listing every problem of `config`."""
  found = problems(config, jax.device_count() if device_count is None else device_count)
  if found:
    raise ValueError('invalid config:\n  ' + '\n  '.join(found))
