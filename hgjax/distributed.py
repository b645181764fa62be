"""Multi-host start-up: `jax.distributed.initialize` from flags or the standard environment."""

import os

import jax


def initialize(coordinator_address=None, num_processes=None, process_id=None) -> None:
  """Joins a multi-process run when one is configured; a no-op for a single process.

  Flags win over the environment variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
  JAX_PROCESS_ID. On TPU pods and SLURM/Open MPI GPU clusters, calling with no arguments lets
  JAX discover everything (HGJAX_DISTRIBUTED=auto).
  """
  address = coordinator_address or os.environ.get('JAX_COORDINATOR_ADDRESS')
  if num_processes is None and 'JAX_NUM_PROCESSES' in os.environ:
    num_processes = int(os.environ['JAX_NUM_PROCESSES'])
  if process_id is None and 'JAX_PROCESS_ID' in os.environ:
    process_id = int(os.environ['JAX_PROCESS_ID'])
  if os.environ.get('HGJAX_DISTRIBUTED') == 'auto':
    jax.distributed.initialize()
    return
  if address is None:
    return
  # CPU devices need a collectives implementation across processes; GPUs/TPUs ignore it.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=address, num_processes=num_processes,
                             process_id=process_id)
