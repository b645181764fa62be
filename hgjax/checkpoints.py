"""Checkpointing: the only module that imports orbax.

A training checkpoint holds three items: `state` (the TrainState pytree), `config` (JSON) and
`data` (the grain iterator state, one file per process), so a resumed run continues with the
same parameters, optimiser state and data order. Writes are atomic (orbax writes to a
temporary directory and renames it), so a run killed mid-write leaves the previous
checkpoint intact.
"""

import json
from pathlib import Path

import grain
import jax
import orbax.checkpoint as ocp


def manager(workdir, keep: int) -> ocp.CheckpointManager:
  """CheckpointManager for `workdir/checkpoints`, keeping the latest `keep` checkpoints."""
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                         enable_async_checkpointing=False)
  handlers = {'state': ocp.StandardCheckpointHandler(), 'config': ocp.JsonCheckpointHandler(),
              'data': grain.checkpoint.CheckpointHandler()}
  return ocp.CheckpointManager(Path(workdir).absolute() / 'checkpoints', options=options,
                               item_handlers=handlers)


def save(mngr: ocp.CheckpointManager, step: int, state, config_json: dict, data_iterator,
         force: bool = False) -> bool:
  """Saves (state, config, data iterator) at `step`; returns whether it was written."""
  args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                            config=ocp.args.JsonSave(config_json),
                            data=grain.checkpoint.CheckpointSave(data_iterator))
  saved = mngr.save(step, args=args, force=force)
  mngr.wait_until_finished()
  return saved


def restore(mngr: ocp.CheckpointManager, step: int, abstract_state, data_iterator=None):
  """Restores the state at `step` (shaped/sharded like `abstract_state`) and, if given, the
  data iterator in place. Returns the state."""
  items = {'state': ocp.args.StandardRestore(abstract_state)}
  if data_iterator is not None:
    items['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
  return mngr.restore(step, args=ocp.args.Composite(**items))['state']


def restore_state_only(directory, step: int, abstract_state):
  """Restores just the train state of checkpoint `step` in `directory` (a checkpoints dir)."""
  mngr = ocp.CheckpointManager(Path(directory).absolute(), item_handlers={
      'state': ocp.StandardCheckpointHandler()}, options=ocp.CheckpointManagerOptions(
          read_only=True))
  return mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state)))['state']


def save_variables(directory, variables: dict) -> None:
  """Writes model variables ({'params', 'batch_stats'}) to `directory/variables`."""
  ocp.StandardCheckpointer().save(Path(directory).absolute() / 'variables', variables,
                                  force=True)


def load_variables(directory, abstract_variables=None) -> dict:
  """Reads `directory/variables` (as written by `save_variables` or `hgjax.convert`)."""
  path = Path(directory).absolute() / 'variables'
  if not path.exists():
    raise FileNotFoundError(
        f'init_checkpoint: {path} does not exist; write it with `python -m hgjax.convert`')
  ckpt = ocp.StandardCheckpointer()
  if abstract_variables is None:
    return ckpt.restore(path)
  return ckpt.restore(path, jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_variables))


def saved_config(directory, step: int) -> dict:
  """The config JSON stored with checkpoint `step`."""
  path = Path(directory).absolute() / 'checkpoints' / str(step) / 'config' / 'metadata'
  if not path.exists():
    raise FileNotFoundError(f'no config in checkpoint: {path} does not exist')
  return json.loads(path.read_text())
