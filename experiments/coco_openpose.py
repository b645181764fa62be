"""OpenPose (CVPR'17) on COCO at 368 px: the official training recipe
(ZheC/Realtime_Multi-Person_Pose_Estimation training/setLayers.py,
example_proto/pose_solver.prototxt and the caffe_train data layer;
shared/docs/methods/openpose.md sections 1, 4, 5).

Network: VGG-19 conv1_1..conv4_2 + conv4_3_CPM 256 + conv4_4_CPM 128, stage 1 with two branches
(3 x 3x3 128, 1x1 512), stages 2..6 with 5 x 7x7 128 and 1x1 128 per branch; 38 PAF channels (19
limbs) and 19 heatmaps (18 COCO-18 parts incl. the neck, + background): 52,311,446 parameters.
Loss: the Caffe Euclidean loss of all 6 stages and both branches on masked maps.
Solver: SGD, momentum 0.9, base lr 4e-5, weight decay 5e-4 without decay on biases
(decay_mult 0), step policy gamma 0.333 every 136,106 iterations, 600,000 iterations (the
released model is iteration 440,000); batch 10; lr_mult 1 (weights) / 2 (biases) for the VGG, CPM
and stage-1 convs and 4 / 8 for stages 2..6 (`optimizer.lr_multipliers` on the stage modules
`model{t}_{b}`, t >= 2, times `optimizer.bias_lr_multiplier` 2).

Augmentation, as far as hgjax's COCO pipeline allows (it augments whole images; the official data
layer crops 368 px around one chosen person scaled to 0.6 x 368 px tall): rotation U(-40, 40)
degrees always, translation U(-40, 40) px, flip with p 0.5, no colour augmentation (the
official values); the official zoom U(0.5, 1.1) around the person-normalised scale becomes the
same relative spread around the whole image, crop side x [0.8 / 1.1, 0.8 / 0.5] (0.8 = the mean
zoom). Not reproducible here: the person-centred crop, the -1 px keypoint shift of the Caffe data
layer (a bug), unmasked padding.
The VGG-19 trunk is initialised from ImageNet in the official recipe; hgjax has no VGG-19 loader
yet (train from `init_checkpoint` or from scratch).
"""

from hgjax import defaults

STEPS = 600_000
STEP_SIZE = 136_106


def get_config():
  c = defaults.get_config()
  c.dataset.name = 'coco'
  c.dataset.num_joints = 17     # COCO-17 in the data; the method adds the neck (COCO-18)
  c.dataset.image_size = 368
  c.dataset.max_people = 30
  c.dataset.heatmap_stride = 8  # targets and masks on the network's stride-8 grid (46 x 46)

  # The CVPR'17 data layer: sigma 7 input px, clipped sum of the people's Gaussians, PAF of the
  # person drawn last (the 2019 layer's max / average is the default in hgjax.defaults).
  c.targets.openpose_sigma_px = 7.0
  c.targets.openpose_heatmap_mode = 'sum_clip'
  c.targets.openpose_paf_mode = 'overwrite'
  c.targets.openpose_limb_width = 1.0

  c.augment.scale_min = 0.8 / 1.1
  c.augment.scale_max = 0.8 / 0.5
  c.augment.rotation = 40.0
  c.augment.rotation_prob = 1.0
  c.augment.translate = 40.0
  c.augment.flip = True
  c.augment.color_jitter = 0.0

  c.model.kind = 'openpose'
  c.model.num_outputs = 57
  c.model.openpose_trunk_widths = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 256, 128)
  c.model.openpose_stages = 6
  c.model.openpose_stage1_widths = (128, 512)
  c.model.openpose_stage_widths = (128, 128)
  c.model.openpose_paf_channels = 38
  c.model.openpose_heatmap_channels = 19

  c.optimizer.name = 'sgd'
  c.optimizer.momentum = 0.9
  c.optimizer.learning_rate = 4e-5
  c.optimizer.weight_decay = 5e-4
  c.optimizer.decay_biases = False
  c.optimizer.lr_multipliers = ((r'^model(?:[2-9]|\d\d+)_', 4.0),)
  c.optimizer.bias_lr_multiplier = 2.0
  c.optimizer.schedule = 'step'
  c.optimizer.decay_steps = tuple(range(STEP_SIZE, STEPS, STEP_SIZE))
  c.optimizer.decay_factor = 0.333
  c.optimizer.warmup_steps = 0

  c.train.batch_size = 10
  c.train.num_steps = STEPS
  c.train.log_every = 100
  c.train.checkpoint_every = 2_000
  c.train.eval_every = 20_000

  c.eval.batch_size = 8
  c.eval.flip_test = False
  c.eval.project_to_input = True  # the demo parses the maps resized (cubic) to the image
  c.grouping.openpose_style = 'python'   # 'matlab': the paper's COCO-number constants
  # The official demo averages the scales [0.5, 1, 1.5, 2] x 368 / image height.
  c.grouping.scales = (1.0,)
  c.grouping.max_people = 20
  return c
