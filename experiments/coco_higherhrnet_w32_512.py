"""HigherHRNet-W32 on COCO at 512 px, MMPose 0.x's recipe value for value
(configs/body/2d_kpt_sview_rgb_img/associative_embedding/coco/higherhrnet_w32_coco_512x512.py;
COCO val2017 67.7 AP single-scale with flip test there, 67.1 in the paper).

Network: HRNet-W32 (branches 32/64/128/256, modules 1/4/3, 4 blocks) + one deconv of 32 channels
(kernel 4) with 4 BasicBlocks; heatmaps at 128 and 256, tags at 128. Data: 512 px, sigma 2 at
both resolutions, at most 30 people, rotation +-30 deg, scale 0.75-1.5 (short side), translation
+-40 px, flip 0.5. Loss: heatmap MSE at both resolutions (factors 1, 1), AE push/pull (exp) with
factors 1e-3 at 1/4. Adam 1.5e-3 with a linear warm-up over 500 iterations from 0.001 x, x0.1 at
epochs 200 and 260 of 300; 24 images per device on MMPose's 8 devices = a global batch of 192,
so 64115 training images (COCO train2017 images with people) are 334 steps per epoch. Test: flip,
maps projected to the input size, NMS 5, detection 0.1, tag threshold 1, adjust and refine.
The ImageNet-pretrained backbone is not loaded by hgjax yet (train from `init_checkpoint`).
"""

from hgjax import defaults

STEPS_PER_EPOCH = 334     # ceil(64115 / 192)


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
  c.augment.color_jitter = 0.0

  c.targets.sigma = 2.0

  c.model.kind = 'higherhrnet'
  c.model.num_outputs = 34
  c.model.tag_dim = 1
  c.model.hrnet_widths = (32, 64, 128, 256)
  c.model.hrnet_modules = (1, 4, 3)
  c.model.hrnet_blocks = (4, 4, 4)
  c.model.deconv_features = (32,)
  c.model.deconv_kernel = 4
  c.model.deconv_blocks = 4
  c.model.deconv_cat_output = (True,)

  c.loss.foreground_weight = 1.0
  c.loss.heatmap_factors = (1.0, 1.0)
  c.loss.push_weight = 1e-3
  c.loss.pull_weight = 1e-3
  c.loss.push_form = 'exp'

  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1.5e-3
  c.optimizer.schedule = 'step'
  c.optimizer.warmup_steps = 500
  c.optimizer.warmup_init_factor = 0.001
  c.optimizer.decay_steps = (200 * STEPS_PER_EPOCH, 260 * STEPS_PER_EPOCH)
  c.optimizer.decay_factor = 0.1

  c.train.batch_size = 192
  c.train.num_steps = 300 * STEPS_PER_EPOCH
  c.train.log_every = 100
  c.train.checkpoint_every = 2_000
  c.train.eval_every = 10 * STEPS_PER_EPOCH

  c.eval.batch_size = 8
  c.eval.flip_test = True
  c.eval.refine = 'quarter'
  c.eval.project_to_input = True

  c.grouping.detection_threshold = 0.1
  c.grouping.tag_threshold = 1.0
  c.grouping.tag_scale = 1.0
  c.grouping.top_k = 30
  c.grouping.max_people = 20
  c.grouping.nms_kernel = 5
  c.grouping.scales = (1.0,)
  c.grouping.refine = True
  return c
