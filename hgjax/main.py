"""Entry point: `python -m hgjax.main --config experiments/synthetic.py --workdir DIR`.

`--mode=train` trains (resuming from the workdir's latest checkpoint) and evaluates;
`--mode=eval` evaluates the latest checkpoint (or `--config.eval.checkpoint`). Config values are
overridden with `--config.section.key=value`; unknown keys fail.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from hgjax import allocator
from hgjax import distributed

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'experiment config file', lock_config=True)
flags.DEFINE_string('workdir', None, 'directory for checkpoints, logs and predictions')
flags.DEFINE_enum('mode', 'train', ['train', 'eval'], 'train (and evaluate) or only evaluate')
flags.DEFINE_string('coordinator_address', None, 'multi-host: host:port of process 0')
flags.DEFINE_integer('num_processes', None, 'multi-host: number of processes')
flags.DEFINE_integer('process_id', None, 'multi-host: index of this process')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)   # orbax logs every file it writes at INFO
  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  from hgjax import train  # after jax.distributed.initialize, which must run first
  if FLAGS.mode == 'train':
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  else:
    train.evaluate_checkpoint(FLAGS.config, FLAGS.workdir)


if __name__ == '__main__':
  allocator.reexec_with('auto', 'hgjax.main')
  app.run(main)
