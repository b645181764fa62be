"""Associative Embedding on COCO with the paper's settings (Newell, Huang and Deng, NeurIPS 2017).

The network is the authors' released one (princeton-vl/pose-ae-train): 4 stacks of plain 3x3
conv hourglasses, 256 features widening by 128 per level, no BatchNorm (the released COCO
model has none), 512 px input, 128 px heatmaps, 17 heatmaps + 17 tags (tag dimension 1).
Training: Adam 2e-4, batch 32, push and pull weights 1e-3, heatmap sigma 2 grid pixels (the
release's output_res / 64), scale 0.75-1.5, rotation +-30 deg, translation +-40 px, flip; at
most 30 people per image. The learning rate drops x0.1 late in training (the schedule is our
choice: 200k of 250k steps).

Evaluation: single scale with flip test during training (cheap); the paper's multi-scale test
(about +5 AP) is `--config.grouping.scales='(2.0, 1.0, 0.5)'` in `--mode=eval`.
"""

from hgjax import defaults


def get_config():
  c = defaults.get_config()
  c.dataset.name = 'coco'
  c.dataset.num_joints = 17
  c.dataset.image_size = 512
  c.dataset.max_people = 30

  c.augment.scale_min = 0.75
  c.augment.scale_max = 1.5
  c.augment.rotation = 30.0
  c.augment.rotation_prob = 1.0
  c.augment.translate = 40.0
  c.augment.flip = True
  c.augment.color_jitter = 0.0     # the release does no colour augmentation

  c.targets.sigma = 2.0

  c.model.kind = 'ae'
  c.model.num_stacks = 4
  c.model.features = 256
  c.model.increase = 128
  c.model.inner_increase = 128
  c.model.depth = 4
  c.model.num_outputs = 34         # 17 heatmaps + 17 tags (the release computes 68, uses 34)
  c.model.batch_norm = False
  c.model.tag_dim = 1

  c.loss.push_weight = 1e-3
  c.loss.pull_weight = 1e-3
  c.loss.push_form = 'exp'

  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 2e-4
  c.optimizer.schedule = 'step'
  c.optimizer.decay_steps = (200_000,)
  c.optimizer.decay_factor = 0.1

  c.train.batch_size = 32
  c.train.num_steps = 250_000
  c.train.log_every = 100
  c.train.checkpoint_every = 2_000
  c.train.eval_every = 10_000

  c.eval.batch_size = 8
  c.eval.flip_test = True
  c.eval.refine = 'quarter'

  c.grouping.detection_threshold = 0.1
  c.grouping.tag_threshold = 1.0
  c.grouping.tag_scale = 1.0
  c.grouping.top_k = 30
  c.grouping.max_people = 20
  c.grouping.scales = (1.0,)
  c.grouping.refine = True
  c.grouping.refine_scores = True
  return c
