"""Every configuration key hgjax reads, with the Stacked Hourglass paper's MPII values.

Experiment files import `get_config` from here and change a few fields; library code reads
`config.x.y` and never supplies a default of its own.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  # Directory written by `python -m hgjax.convert` (official weights); '' = none.
  c.init_checkpoint = ''

  c.dataset = d = ml_collections.ConfigDict()
  d.name = 'mpii'                # mpii | coco | synthetic | synthetic_scenes
  d.data_dir = 'data'            # tfds data_dir holding hgjax_mpii / hgjax_coco
  d.train_split = 'train'
  d.eval_split = 'validation'
  d.num_joints = 16
  d.image_size = 256             # network input, square, pixels
  d.heatmap_stride = 4           # input pixels per heatmap pixel
  d.max_people = 1               # people per example after explicit truncation
  d.synthetic_num_train = 1_000_000   # index space of the procedural train split
  d.synthetic_num_eval = 500
  d.scene_height_min = 0.25      # synthetic_scenes: figure height range, fractions of the side
  d.scene_height_max = 0.8
  d.on_bad_example = 'error'     # error | skip

  c.augment = a = ml_collections.ConfigDict()
  a.scale_min = 0.75             # multiplies the person box
  a.scale_max = 1.25
  a.rotation = 30.0              # degrees, uniform in [-rotation, rotation]
  a.rotation_prob = 0.6
  a.translate = 0.0              # pixels of the input image, uniform
  a.flip = True
  a.color_jitter = 0.2           # per-channel multiplicative, uniform in [1-x, 1+x]

  c.targets = t = ml_collections.ConfigDict()
  t.sigma = 1.0                  # Gaussian std in heatmap pixels
  t.convention = 'continuous'    # u = (x + 0.5) / stride - 0.5; the only one implemented
  # OpenPose only (hgjax.paf_targets): confidence-map std in INPUT pixels (official 7); how
  # people combine: 'max' + 'average' (the 2019 data layer) or 'sum_clip' + 'overwrite' (the
  # CVPR'17 layer: clipped sum of Gaussians, PAF of the last person drawn); PAF half-width in
  # grid cells (official 1).
  t.openpose_sigma_px = 7.0
  t.openpose_heatmap_mode = 'max'
  t.openpose_paf_mode = 'average'
  t.openpose_limb_width = 1.0

  c.model = m = ml_collections.ConfigDict()
  m.kind = 'shg'                 # shg | ae | higherhrnet | openpose
  m.num_stacks = 8
  m.features = 256
  m.depth = 4
  # Channels of each stack's head: K heatmaps (SHG); K heatmaps + K * tag_dim tags (AE).
  # Extra channels are computed and ignored (the released COCO AE model has 68).
  m.num_outputs = 16
  m.stem_features = 128          # width of the stem residuals (paper: 128)
  m.dtype = 'float32'            # compute dtype: float32 | bfloat16 (params stay float32)
  m.scan_stacks = False          # SHG: stacks 1..S-1 in one lax.scan (compile time/memory)
  m.remat_stacks = False         # SHG: recompute scanned stacks in the backward pass (memory)
  m.increase = 128               # AE only: width added per hourglass level
  m.inner_increase = 128         # AE only: increase of the inner levels (official code: 128)
  m.batch_norm = True            # AE only (the SHG always has BatchNorm)
  m.tag_dim = 1                  # AE, HigherHRNet: tag dimensions per joint
  # HigherHRNet only (the official W32: widths 32-256, modules (1, 4, 3), 4 blocks per branch;
  # W48: widths 48-384, deconv_features (48,)).
  m.hrnet_widths = (32, 64, 128, 256)   # branch widths; stage s has the first s branches
  m.hrnet_modules = (1, 4, 3)    # multi-resolution modules of stages 2, 3, 4
  m.hrnet_blocks = (4, 4, 4)     # BasicBlocks per branch in stages 2, 3, 4
  m.hrnet_stage1_blocks = 4      # Bottlenecks of stage 1 (official: 4, fixed)
  m.deconv_features = (32,)      # one entry per 2x higher-resolution branch; () = none
  m.deconv_kernel = 4            # 4 | 3 | 2 (the official padding of each)
  m.deconv_blocks = 4            # BasicBlocks after each transposed conv
  m.deconv_cat_output = (True,)  # concatenate the previous outputs before each deconv
  # OpenPose only (the official CVPR'17 COCO model; MPI: 28 / 16 channels, 4 stages in the
  # official 'faster' variant). Widths of the 12 trunk convs conv1_1..conv4_2 (VGG-19),
  # conv4_3_CPM, conv4_4_CPM (3x3, max-pools after conv1_2, conv2_2, conv3_4).
  m.openpose_trunk_widths = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 256, 128)
  m.openpose_stages = 6          # T: stage 1 + T - 1 refinement stages (7x7 convs)
  m.openpose_stage1_widths = (128, 512)   # stage-1 branches: 3x3 conv width, 1x1 conv width
  m.openpose_stage_widths = (128, 128)    # stages 2..T branches: 7x7 conv width, 1x1 conv width
  m.openpose_paf_channels = 38   # 2 per limb (19 limbs of COCO-18)
  m.openpose_heatmap_channels = 19   # parts + background (18 + 1 for COCO-18)
  # A pretrained checkpoint (.pth/.npz, e.g. the ImageNet HRNet-W32 `hrnet_w32-36af842e.pth`)
  # loaded into the tensors of the same official name when training starts from scratch;
  # '' = none. Applied after `init_checkpoint`'s absence; see hgjax.convert.load_pretrained.
  m.init_from = ''

  c.loss = lo = ml_collections.ConfigDict()
  lo.foreground_weight = 1.0     # weight of target pixels > 0; 1 = plain MSE (tutorial: 82)
  lo.intermediate_supervision = True
  lo.push_weight = 1e-3          # AE
  lo.pull_weight = 1e-3          # AE
  lo.push_form = 'exp'           # AE: exp | margin
  lo.push_margin = 1.0           # AE, margin form only
  lo.heatmap_factors = (1.0, 1.0)   # HigherHRNet: heatmap loss weight per output resolution

  c.optimizer = o = ml_collections.ConfigDict()
  o.name = 'rmsprop'             # rmsprop | adam | adamw | sgd
  o.learning_rate = 2.5e-4
  o.rmsprop_decay = 0.99         # Torch7 / PyTorch RMSprop alpha
  o.eps = 1e-8
  o.momentum = 0.0
  o.b1 = 0.9
  o.b2 = 0.999
  o.weight_decay = 0.0           # adamw: decoupled; sgd: L2 on the gradient (Caffe); else unused
  o.decay_biases = True          # weight decay on 'bias' parameters too (Caffe decay_mult 0: False)
  # Learning-rate multipliers ((regex, factor), ...): a parameter whose name 'module/.../leaf'
  # (e.g. 'model2_1/Mconv1_stage2_L1/kernel') contains a match of a regex (the first that
  # matches) has its updates scaled by the factor; () = none. OpenPose: stages 2..T at 4x.
  o.lr_multipliers = ()
  o.bias_lr_multiplier = 1.0     # a further factor on the updates of 'bias' parameters (Caffe: 2)
  o.schedule = 'step'            # constant | step | cosine
  o.warmup_steps = 0
  o.warmup_init_factor = 0.0     # linear warm-up from this fraction of the rate (MMPose: 0.001)
  o.decay_steps = (150_000, 200_000)   # step schedule boundaries
  o.decay_factor = 0.1
  # steps: the schedule runs over train.num_steps. budget: it runs over whichever of
  # train.num_steps and train.max_minutes (> 0) ends first (hgjax.train.schedule_step).
  o.pace = 'steps'
  o.grad_clip_norm = 0.0         # 0 = no clipping

  c.train = tr = ml_collections.ConfigDict()
  tr.batch_size = 6              # global batch (paper: 6)
  tr.num_steps = 240_000
  tr.log_every = 100
  tr.checkpoint_every = 2_000
  tr.keep_checkpoints = 3
  tr.eval_every = 10_000
  tr.eval_at_start = False       # also evaluate the initial model (step 0)
  # Training-time budget in minutes, 0 = none (train.num_steps is then only a cap). Training
  # time is the wall time of the training steps, summed over resumed sessions; compilation (the
  # first step of each session), evaluation and checkpointing do not count. Checked at every
  # log step (train.log_every): when spent, training stops there, saves a checkpoint and
  # evaluates; rerunning a finished run does nothing. Used for equal-time ablations.
  tr.max_minutes = 0.0
  tr.on_nonfinite = 'error'      # error | skip (skip the update and count it)
  tr.num_workers = 4             # host threads of the input pipeline
  tr.prefetch = 2                # batches
  tr.num_tb_images = 4

  c.eval = e = ml_collections.ConfigDict()
  e.batch_size = 16
  e.flip_test = True
  e.refine = 'quarter'           # none | quarter | taylor | dark (sub-pixel step, hgjax.decode)
  e.blur_sigma = 1.0             # 'dark': smoothing std in heatmap pixels before the step
  e.checkpoint = ''              # '' = latest in workdir
  e.num_examples = -1            # -1 = whole split
  e.write_predictions = True
  e.project_to_input = True      # HigherHRNet: maps resized to the input size before grouping

  c.grouping = g = ml_collections.ConfigDict()   # AE bottom-up decoding
  g.detection_threshold = 0.1
  g.tag_threshold = 1.0
  g.tag_scale = 1.0              # tags are multiplied by it before grouping (reference: 1)
  g.top_k = 30
  g.max_people = 20
  g.scales = (1.0,)
  g.refine = True                # fill missing joints (reference code step)
  g.refine_scores = True         # filled joints count in the person score (reference code)
  g.nms_kernel = 5               # HigherHRNet parser's NMS window (the AE grouping uses 3x3)
  # OpenPose parser (hgjax.paf_parser): 'python' (the official demo's constants) or 'matlab'
  # (the constants of the Matlab code behind the paper's COCO numbers).
  g.openpose_style = 'python'
  return c
