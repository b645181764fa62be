"""HigherHRNet-W48 at 640 px, the official recipe
(experiments/coco/higher_hrnet/w48_640_adam_lr1e-3.yaml; COCO val2017 69.9 AP single-scale, 72.1
multi-scale): branches 48/96/192/384, a deconv of 48 channels, heatmaps at 160 and 320, Adam
1e-3, 10 images per device on 4 devices. The official run trains and tests in FP16 (BatchNorm in
float32); hgjax computes in float32 here (`model.dtype='bfloat16'` is the low-precision option).
"""

from experiments import coco_higherhrnet_w32_512_official

STEPS_PER_EPOCH = 1603    # ceil(64115 / 40)


def get_config():
  c = coco_higherhrnet_w32_512_official.get_config()
  c.dataset.image_size = 640
  c.model.hrnet_widths = (48, 96, 192, 384)
  c.model.deconv_features = (48,)
  c.optimizer.decay_steps = (200 * STEPS_PER_EPOCH, 260 * STEPS_PER_EPOCH)
  c.train.batch_size = 40
  c.train.num_steps = 300 * STEPS_PER_EPOCH
  c.train.eval_every = 10 * STEPS_PER_EPOCH
  return c
