"""Training: TrainState, optimiser from config, the pure jitted `train_step`, and the loop
`train_and_evaluate(config, workdir)` (checkpoint/resume, logging, periodic evaluation).
"""

import dataclasses
import functools
import re
import signal
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from hgjax import allocator
from hgjax import checkpoints
from hgjax import config_check
from hgjax import methods
from hgjax import metric_writer
from hgjax.datasets import pipeline
from hgjax.evaluation import evaluators


class TrainState(train_state.TrainState):
  batch_stats: Any
  nonfinite_count: jax.Array        # updates skipped because loss or gradients were not finite
  first_nonfinite_step: jax.Array   # step of the first such update, -1 if none


def make_schedule(config) -> optax.Schedule:
  o = config.optimizer
  if o.schedule == 'constant':
    main = optax.constant_schedule(o.learning_rate)
  elif o.schedule == 'step':
    bounds = {int(b) - o.warmup_steps: o.decay_factor for b in o.decay_steps}
    main = optax.piecewise_constant_schedule(o.learning_rate, bounds)
  elif o.schedule == 'cosine':
    main = optax.cosine_decay_schedule(o.learning_rate,
                                       max(1, config.train.num_steps - o.warmup_steps))
  else:
    raise ValueError(f'config.optimizer.schedule={o.schedule!r}')
  if o.warmup_steps == 0:
    return main
  warm = optax.linear_schedule(o.warmup_init_factor * o.learning_rate, o.learning_rate,
                               o.warmup_steps)
  return optax.join_schedules([warm, main], [o.warmup_steps])


def paced_by_budget(config) -> bool:
  """Whether the schedule follows the training-time budget (`config.optimizer.pace`)."""
  return config.optimizer.pace == 'budget'


def schedule_step(step: int, seconds: float, config) -> int:
  """The step at which the learning-rate schedule is evaluated with `optimizer.pace='budget'`.

  Progress is the larger of step / train.num_steps and training seconds / the budget
  (train.max_minutes): the schedule reaches its end when either runs out, so a run cut short
  by the budget on a slow machine still ends with its learning rate annealed (budget-aware
  schedules: Li, Yumer and Ramanan, "Budgeted Training", ICLR 2020).
  """
  num_steps, budget_s = config.train.num_steps, 60.0 * config.train.max_minutes
  return min(num_steps, max(step, int(seconds / budget_s * num_steps)))


def _path_name(path) -> str:
  """A pytree key path as 'module/.../leaf' (e.g. 'model2_1/Mconv1_stage2_L1/kernel')."""
  return '/'.join(str(getattr(k, 'key', k)) for k in path)


def _is_bias(path) -> bool:
  return _path_name(path).rsplit('/', 1)[-1] == 'bias'


def lr_multiplier(config, path) -> float:
  """The factor on the updates of the parameter at `path` (`optimizer.lr_multipliers`, the
  first regex that `re.search` finds in its name, times `optimizer.bias_lr_multiplier` for a
  bias): Caffe's per-layer `lr_mult`."""
  o = config.optimizer
  name = _path_name(path)
  factor = next((float(f) for pattern, f in o.lr_multipliers if re.search(pattern, name)), 1.0)
  return factor * (o.bias_lr_multiplier if _is_bias(path) else 1.0)


def scale_by_multipliers(config) -> optax.GradientTransformation:
  """Stateless: every parameter's updates times its `lr_multiplier`."""

  def update(updates, state, params=None):
    del params
    return jax.tree_util.tree_map_with_path(
        lambda path, u: u * lr_multiplier(config, path), updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(config) -> optax.GradientTransformation:
  """The optax optimiser of `config.optimizer`. With `pace='budget'` it has unit learning rate
  and `train_step` scales its updates by the schedule at `schedule_step` (given by the loop).

  Weight decay: adamw's decoupled decay; sgd: L2 added to the gradient before the momentum
  (Caffe's SGD); without `decay_biases` not on 'bias' parameters. Learning-rate multipliers
  (`lr_multipliers`, `bias_lr_multiplier`) scale the final updates (for sgd, exactly Caffe's
  lr_mult with a constant rate). Transforms that are off are not added, so the optimiser state
  of existing configs is unchanged."""
  o = config.optimizer
  lr = 1.0 if paced_by_budget(config) else make_schedule(config)
  decay_mask = None if o.decay_biases else (
      lambda params: jax.tree_util.tree_map_with_path(lambda p, _: not _is_bias(p), params))
  if o.name == 'rmsprop':
    # eps outside the square root, as in Torch7 and PyTorch RMSprop.
    tx = optax.rmsprop(lr, decay=o.rmsprop_decay, eps=o.eps, momentum=o.momentum or None,
                       eps_in_sqrt=False)
  elif o.name == 'adam':
    tx = optax.adam(lr, b1=o.b1, b2=o.b2, eps=o.eps)
  elif o.name == 'adamw':
    tx = optax.adamw(lr, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay,
                     mask=decay_mask)
  elif o.name == 'sgd':
    tx = optax.sgd(lr, momentum=o.momentum or None)
    if o.weight_decay > 0:
      tx = optax.chain(optax.add_decayed_weights(o.weight_decay, decay_mask), tx)
  else:
    raise ValueError(f'config.optimizer.name={o.name!r}')
  if o.lr_multipliers or o.bias_lr_multiplier != 1.0:
    tx = optax.chain(tx, scale_by_multipliers(config))
  if o.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(o.grad_clip_norm), tx)
  return tx


def create_state(config, model, rng) -> TrainState:
  size = config.dataset.image_size
  variables = model.init(rng, jnp.zeros((1, size, size, 3), jnp.float32), train=False)
  return TrainState.create(apply_fn=model.apply, params=variables['params'],
                           batch_stats=variables.get('batch_stats', {}),
                           tx=make_optimizer(config),
                           nonfinite_count=jnp.zeros((), jnp.int32),
                           first_nonfinite_step=jnp.full((), -1, jnp.int32))


def train_step(state: TrainState, batch: dict, lr=None, *, method, settings, schedule=None):
  """One optimisation step of `method` (a `methods.Method`). Pure; jit it with the state donated.

  batch: image uint8 [B, H, W, 3]; keypoints float32 [B, P, K, 3] (x, y, v) in input pixels;
  optionally mask float32 [B, h, w] (1 = supervise). settings: `method.settings(config)`.
  lr: float32 scalar multiplying the optimiser's updates (`optimizer.pace='budget'`: the
  optimiser has unit learning rate), or None (the optimiser's own schedule). Non-finite loss or
  gradients skip the update (parameters stay finite) and are counted in the state.
  Returns (new state, metrics dict of scalars: 'train/loss', the method's loss terms as
  'train/<name>', gradient, parameter and update norms, 'train/lr').
  """
  images = method.normalize_images(batch['image'])
  targets = method.render_targets(batch, settings)

  def objective(params):
    outputs, new_vars = state.apply_fn({'params': params, 'batch_stats': state.batch_stats},
                                       images, train=True, mutable=['batch_stats'])
    total, terms = method.loss(outputs, targets, settings)
    return total, (terms, new_vars.get('batch_stats', {}))

  (loss, (terms, batch_stats)), grads = jax.value_and_grad(objective, has_aux=True)(
      state.params)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  if lr is not None:
    updates = jax.tree.map(lambda u: lr * u, updates)
  params = optax.apply_updates(state.params, updates)
  grad_norm = optax.global_norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  keep = functools.partial(jax.tree.map, lambda new, old: jnp.where(finite, new, old))
  new_state = state.replace(
      step=state.step + 1, params=keep(params, state.params),
      opt_state=keep(opt_state, state.opt_state),
      batch_stats=keep(batch_stats, state.batch_stats),
      nonfinite_count=state.nonfinite_count + (~finite).astype(jnp.int32),
      first_nonfinite_step=jnp.where((state.first_nonfinite_step < 0) & ~finite,
                                     state.step, state.first_nonfinite_step))
  metrics = {'train/loss': loss, 'train/grad_norm': grad_norm,
             'train/param_norm': optax.global_norm(state.params),
             'train/update_norm': optax.global_norm(updates)}
  metrics.update({f'train/{name}': value for name, value in terms.items()})
  if lr is not None:
    metrics['train/lr'] = lr
  elif schedule is not None:
    metrics['train/lr'] = schedule(state.step)
  return new_state, metrics


def make_mesh() -> jax.sharding.Mesh:
  """A 1-D mesh over every device of every process, axis 'data'."""
  # Auto axes: XLA propagates shardings through the model (reshapes and all).
  return jax.make_mesh((jax.device_count(),), ('data',),
                       axis_types=(jax.sharding.AxisType.Auto,))


def jit_train_step(config, mesh):
  """`train_step` of `config`'s method jitted over `mesh`: batch sharded on 'data', state
  replicated and donated.

  Called as step(state, batch), or step(state, batch, lr) with `optimizer.pace='budget'`.
  """
  replicated = NamedSharding(mesh, P())
  data = NamedSharding(mesh, P('data'))
  method = methods.method_for(config)
  step = functools.partial(train_step, method=method, settings=method.settings(config),
                           schedule=make_schedule(config))
  shardings = (replicated, data, replicated) if paced_by_budget(config) else (replicated, data)
  return jax.jit(step, in_shardings=shardings, out_shardings=(replicated, replicated),
                 donate_argnums=(0,))


def global_batch(local_batch: dict, mesh) -> dict:
  """Assembles each process's numpy shard into global arrays sharded over 'data'."""
  sharding = NamedSharding(mesh, P('data'))
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local_batch.items()}


class _Preemption:
  """Turns SIGTERM/SIGINT into a flag the loop checks between steps."""

  def __init__(self):
    self.requested = False
    self._old = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._old[sig] = signal.signal(sig, self._handle)
      except ValueError:       # not the main thread: leave signals alone
        pass
    return self

  def _handle(self, signum, frame):
    self.requested = True

  def __exit__(self, *exc):
    for sig, handler in self._old.items():
      signal.signal(sig, handler)


class _TrainClock:
  """Training time (`config.train.max_minutes`): wall time of the training steps, summed over
  sessions; the caller stops it around compilation, checkpointing and evaluation."""

  def __init__(self, config, workdir: str, start: int):
    self.budget_s = 60.0 * config.train.max_minutes
    self.before_s = 0.0       # earlier sessions: the last train/time_s logged at or before start
    self._t = None
    if start and (Path(workdir) / 'metrics.jsonl').exists():
      for row in metric_writer.read_metrics(workdir):
        if row['step'] <= start and 'train/time_s' in row:
          self.before_s = row['train/time_s']

  def start(self) -> None:
    self._t = time.perf_counter()

  def stop(self) -> None:
    if self._t is not None:
      self.before_s += time.perf_counter() - self._t
      self._t = None

  @property
  def seconds(self) -> float:
    return self.before_s + (time.perf_counter() - self._t if self._t is not None else 0.0)

  def agreed_seconds(self) -> float:
    """Training seconds by process 0's clock, the same on every process."""
    if jax.process_count() > 1:
      return float(multihost_utils.broadcast_one_to_all(np.float32(self.seconds)))
    return self.seconds

  def spent(self) -> bool:
    """Whether the budget is used up; process 0's clock decides for every process."""
    return self.budget_s > 0 and self.agreed_seconds() >= self.budget_s


def _format_eta(seconds: float) -> str:
  seconds = int(max(0, seconds))
  return f'{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains `config` in `workdir`, resuming from its latest checkpoint if there is one.

  Resume order: own checkpoint in workdir, else `config.init_checkpoint`, else scratch.
  Stops after `config.train.num_steps` steps or `config.train.max_minutes` of training time,
  whichever comes first (the last step saves a checkpoint and evaluates).
  Returns the last evaluation's metrics ({} if this call ran none).
  """
  config_check.validate(config)
  mesh = make_mesh()
  method = methods.method_for(config)
  model = method.build_model(config)
  replicated = NamedSharding(mesh, P())
  rng = jax.random.key(config.seed)
  abstract = jax.eval_shape(functools.partial(create_state, config, model), rng)
  mngr = checkpoints.manager(workdir, config.train.keep_checkpoints)
  train_iter = pipeline.train_iterator(config, jax.process_index(), jax.process_count())
  start = mngr.latest_step()
  if start is not None:
    abstract_sharded = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), abstract)
    state = checkpoints.restore(mngr, start, abstract_sharded, train_iter)
    state = state.replace(tx=make_optimizer(config), apply_fn=model.apply)
    print(f'resumed from {workdir}/checkpoints/{start}', flush=True)
  else:
    start = 0
    state = jax.jit(functools.partial(create_state, config, model),
                    out_shardings=replicated)(rng)
    if config.init_checkpoint:
      variables = checkpoints.load_variables(
          config.init_checkpoint, {'params': state.params, 'batch_stats': state.batch_stats})
      state = state.replace(params=variables['params'], batch_stats=variables['batch_stats'])
      print(f'initialised from {config.init_checkpoint}', flush=True)
    elif config.model.init_from:
      state = _init_from_pretrained(config, state, replicated)
  step_fn = jit_train_step(config, mesh)
  evaluator = evaluators.make_evaluator(config, method, model, mesh)
  writer = metric_writer.MetricWriter(workdir, start)
  config_json = config.to_dict()
  num_steps = config.train.num_steps
  batch_size = config.train.batch_size
  pending, eval_metrics = [], {}
  t_log, wait_s, step = time.perf_counter(), 0.0, start
  t_start = t_log
  clock = _TrainClock(config, workdir, start)
  paced = paced_by_budget(config)
  # The budget pace reads the clock at log steps only (process 0's, so every process feeds
  # the replicated step the same lr); between them the schedule follows the step count. The
  # schedule is tabulated once on the host: evaluating it per step would queue a device
  # computation behind the train step and block on it, serialising the loop.
  paced_s = clock.agreed_seconds() if paced else 0.0
  lr_table = (np.asarray(jax.vmap(make_schedule(config))(jnp.arange(config.train.num_steps + 1)),
                         np.float32) if paced else None)
  if clock.spent():
    print(f'training-time budget of {config.train.max_minutes} min already spent at step '
          f'{start}: nothing to do', flush=True)
    writer.close()
    return {}
  if start == 0 and config.train.eval_at_start:
    eval_metrics = evaluator.run(state, 0, writer, workdir)
  with _Preemption() as preempt:
    while step < num_steps:
      t0 = time.perf_counter()
      local = next(train_iter)
      wait_s += time.perf_counter() - t0
      if paced:
        lr = lr_table[schedule_step(step, paced_s, config)]
        state, metrics = step_fn(state, global_batch(local, mesh), lr)
      else:
        state, metrics = step_fn(state, global_batch(local, mesh))
      step += 1
      if step == start + 1:       # the training clock starts after the compiling first step
        jax.block_until_ready(metrics)
        allocator.release_free_memory()   # the compiler's freed memory (GiBs for 8 stacks)
        clock.start()
      pending.append(metrics)
      last = step == num_steps
      if step % config.train.log_every == 0 or last or preempt.requested:
        values = {k: float(np.mean([m[k] for m in jax.device_get(pending)]))
                  for k in pending[0]}
        _check_finite(config, state, mngr)
        now = time.perf_counter()
        values['train/examples_per_s'] = len(pending) * batch_size / (now - t_log)
        values['train/input_wait_fraction'] = wait_s / (now - t_log)
        values['train/nonfinite_steps'] = int(state.nonfinite_count)
        values['train/time_s'] = clock.seconds
        if paced:
          paced_s = clock.agreed_seconds()
        if not last and clock.spent():
          last = True
          print(f'training-time budget of {config.train.max_minutes} min spent at step {step}',
                flush=True)
        writer.scalars(step, values)
        eta = (num_steps - step) * (now - t_start) / max(1, step - start)
        print(f'step {step}/{num_steps} loss {values["train/loss"]:.5f} '
              f'{values["train/examples_per_s"]:.1f} ex/s '
              f'input wait {100 * values["train/input_wait_fraction"]:.1f}% '
              f'ETA {_format_eta(eta)}', flush=True)
        pending, t_log, wait_s = [], now, 0.0
      clock.stop()
      if step % config.train.checkpoint_every == 0 or last or preempt.requested:
        checkpoints.save(mngr, step, state, config_json, train_iter)
      if preempt.requested:
        print(f'preempted: saved checkpoint at step {step}; rerun the same command to resume',
              flush=True)
        writer.close()
        return {'preempted_at_step': step}
      if step % config.train.eval_every == 0 or last:
        eval_metrics = evaluator.run(state, step, writer, workdir)
        allocator.release_free_memory()   # the evaluation's compilation and host buffers
        print(f'step {step} ' + ' '.join(f'{k} {v:.4f}' for k, v in eval_metrics.items()),
              flush=True)
      if last:
        break
      clock.start()
  writer.close()
  return dict(eval_metrics)


def _init_from_pretrained(config, state, replicated):
  """`state` with the tensors of `config.model.init_from` that the network has (by official
  name), reporting what was and was not loaded."""
  from hgjax import convert  # torch or the .npz reader, only when asked for
  path = config.model.init_from
  variables = {'params': jax.device_get(state.params),
               'batch_stats': jax.device_get(state.batch_stats)}
  new, loaded, extra, absent = convert.load_pretrained(
      variables, convert.load_state_dict_file(path), config.model.kind)
  new = jax.device_put(new, replicated)
  print(f'initialised {len(loaded)} tensors from {path}; not in the network: {len(extra)} '
        f'({", ".join(extra[:4])}{" ..." if len(extra) > 4 else ""}); not in the checkpoint: '
        f'{len(absent)} ({", ".join(absent[:4])}{" ..." if len(absent) > 4 else ""})',
        flush=True)
  return state.replace(params=new['params'], batch_stats=new.get('batch_stats', {}))


def _check_finite(config, state, mngr) -> None:
  count = int(state.nonfinite_count)
  if count and config.train.on_nonfinite == 'error':
    raise FloatingPointError(
        f'non-finite loss or gradients at step {int(state.first_nonfinite_step)} (the update '
        f'was not applied); last good checkpoint: step {mngr.latest_step()} in '
        f'{mngr.directory}. Set config.train.on_nonfinite=skip to skip such updates.')


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Evaluates one checkpoint: `config.eval.checkpoint` (a checkpoint step directory or a
  directory written by `hgjax.convert`), else the latest in `workdir`, else
  `config.init_checkpoint`. Writes metrics and predictions to `workdir`; returns the metrics.
  """
  config_check.validate(config)
  mesh = make_mesh()
  method = methods.method_for(config)
  model = method.build_model(config)
  replicated = NamedSharding(mesh, P())
  abstract = jax.eval_shape(functools.partial(create_state, config, model),
                            jax.random.key(config.seed))
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), abstract)
  variables = {'params': abstract.params, 'batch_stats': abstract.batch_stats}
  source = config.eval.checkpoint
  mngr = checkpoints.manager(workdir, config.train.keep_checkpoints)
  if source and (Path(source) / 'variables').exists():
    variables, step = checkpoints.load_variables(source, variables), 0
  elif source:
    step = int(Path(source).name)
    state = checkpoints.restore_state_only(Path(source).parent, step, abstract)
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
  elif mngr.latest_step() is not None:
    step = mngr.latest_step()
    state = checkpoints.restore(mngr, step, abstract)
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
  elif config.init_checkpoint:
    variables, step = checkpoints.load_variables(config.init_checkpoint, variables), 0
  else:
    raise FileNotFoundError(f'nothing to evaluate: no checkpoint in {workdir}/checkpoints, and '
                            'config.eval.checkpoint and config.init_checkpoint are empty')
  evaluator = evaluators.make_evaluator(config, method, model, mesh)
  writer = metric_writer.MetricWriter(workdir, resume_step=None)
  metrics = evaluator.run(_Variables(**variables), step, writer, workdir)
  writer.close()
  print(f'step {step} ' + ' '.join(f'{k} {v:.4f}' for k, v in metrics.items()), flush=True)
  return metrics


@dataclasses.dataclass
class _Variables:
  """What evaluators read from a TrainState, for evaluating bare variables."""
  params: Any
  batch_stats: Any
