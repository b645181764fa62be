"""A seconds-sized configuration for tests and smoke runs (synthetic data, tiny hourglass)."""

from experiments import synthetic


def get_config():
  c = synthetic.get_config()
  c.dataset.image_size = 64
  c.dataset.synthetic_num_eval = 8
  c.model.num_stacks = 2
  c.model.features = 16
  c.model.stem_features = 16
  c.model.depth = 2
  c.optimizer.warmup_steps = 2
  c.train.batch_size = 4
  c.train.num_steps = 12
  c.train.log_every = 1
  c.train.checkpoint_every = 4
  c.train.eval_every = 12
  c.train.eval_at_start = False
  c.train.num_tb_images = 2
  c.eval.batch_size = 8
  return c
