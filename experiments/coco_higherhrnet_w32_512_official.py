"""HigherHRNet-W32 at 512 px with the official repository's recipe
(HRNet/HigherHRNet-Human-Pose-Estimation experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml):
as `coco_higherhrnet_w32_512.py` (MMPose) except Adam 1e-3 without warm-up and 12 images per
device. The official runs used 4 GPUs ("developed and tested using 4 NVIDIA P100"; the count of
the released runs is not stated): a global batch of 48, 1336 steps per epoch, x0.1 at epochs
200 and 260 of 300.
"""

from experiments import coco_higherhrnet_w32_512

STEPS_PER_EPOCH = 1336    # ceil(64115 / 48)


def get_config():
  c = coco_higherhrnet_w32_512.get_config()
  c.optimizer.learning_rate = 1e-3
  c.optimizer.warmup_steps = 0
  c.optimizer.warmup_init_factor = 0.0
  c.optimizer.decay_steps = (200 * STEPS_PER_EPOCH, 260 * STEPS_PER_EPOCH)
  c.train.batch_size = 48
  c.train.num_steps = 300 * STEPS_PER_EPOCH
  c.train.eval_every = 10 * STEPS_PER_EPOCH
  return c
