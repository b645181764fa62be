"""OpenPose on synthetic multi-person scenes, CPU sized (the embedded OpenPose default).

Scenes of 1-3 overlapping figures (height 0.4-0.9 of the 128 px image, as `synthetic_ae.py`),
COCO-17 joints (the method adds the neck: 18 parts, 19 limbs), scored by pycocotools on held-out
scenes. The network is the CVPR'17 graph, narrow: a VGG-style trunk of 16-128 channels to the
stride-8 features (16 x 16 at 128 px), stage 1 and two refinement stages with 7x7 convs of 32
channels. Targets, loss and parser are the official ones (2019 max / average targets, the
Caffe Euclidean loss of every stage, the python demo's parser on maps resized to the image);
Adam with a cosine over a training-time budget as the other synthetic configs. No flip test
and no flip augmentation (the figures' side colours do not survive mirroring). See the README
for this config's runs.
"""

from hgjax import defaults


def get_config():
  c = defaults.get_config()
  c.dataset.name = 'synthetic_scenes'
  c.dataset.num_joints = 17
  c.dataset.image_size = 128
  c.dataset.heatmap_stride = 8
  c.dataset.max_people = 3
  c.dataset.synthetic_num_eval = 200
  c.dataset.scene_height_min = 0.4
  c.dataset.scene_height_max = 0.9

  c.targets.openpose_sigma_px = 6.0
  c.targets.openpose_heatmap_mode = 'max'
  c.targets.openpose_paf_mode = 'average'
  c.targets.openpose_limb_width = 1.0

  c.model.kind = 'openpose'
  c.model.num_outputs = 57
  c.model.openpose_trunk_widths = (16, 16, 32, 32, 64, 64, 64, 64, 128, 128, 64, 64)
  c.model.openpose_stages = 3
  c.model.openpose_stage1_widths = (64, 128)
  c.model.openpose_stage_widths = (32, 64)
  c.model.openpose_paf_channels = 38
  c.model.openpose_heatmap_channels = 19

  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = 'cosine'
  c.optimizer.warmup_steps = 400
  c.optimizer.pace = 'budget'

  c.train.batch_size = 4
  c.train.num_steps = 12000
  c.train.max_minutes = 26.0
  c.train.log_every = 100
  c.train.checkpoint_every = 1000
  c.train.eval_every = 2000
  c.train.eval_at_start = False
  c.train.num_workers = 1

  c.eval.batch_size = 50
  c.eval.flip_test = False
  c.eval.project_to_input = True  # the demo parses the maps resized (cubic) to the image
  c.grouping.openpose_style = 'python'
  c.grouping.scales = (1.0,)
  c.grouping.max_people = 20
  return c
