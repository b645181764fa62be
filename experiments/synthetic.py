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
  # Weight of target pixels > 0 (the tutorial seed uses 82 for 64x64 maps; 20 for these 32x32
  # maps): plain MSE stayed near PCKh 0.03 for 250 steps, this reached 0.20 (measured).
  c.loss.foreground_weight = 20.0
  c.train.batch_size = 16
  c.train.num_steps = 1200
  c.train.log_every = 50
  c.train.checkpoint_every = 300
  c.train.eval_every = 300
  c.train.num_workers = 1
  c.eval.batch_size = 50
  # No flip test: left limbs are warm-coloured, right limbs cool, and a mirror image keeps the
  # colours, so the flipped pass labels each limb by the wrong side and the average puts two
  # peaks in every left/right channel (measured at step 450: PCKh@0.5 0.287 with, 0.437
  # without). The training data is not flipped either.
  c.eval.flip_test = False
  return c
