"""The embedded default: a small hourglass on the procedural synthetic people, CPU sized."""

from experiments import defaults


def get_config():
  c = defaults.get_config()
  c.dataset.name = 'synthetic'
  c.dataset.image_size = 128
  c.model.num_stacks = 2
  c.model.features = 64
  c.model.depth = 3
  c.model.stem_features = 64
  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 2e-3
  c.optimizer.schedule = 'cosine'
  c.optimizer.warmup_steps = 100
  c.train.batch_size = 16
  c.train.num_steps = 2500
  c.train.log_every = 50
  c.train.checkpoint_every = 500
  c.train.eval_every = 500
  c.train.num_workers = 1
  c.eval.batch_size = 50
  return c
