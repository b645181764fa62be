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

  c.model = m = ml_collections.ConfigDict()
  m.kind = 'shg'                 # shg | ae | higherhrnet
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
  o.weight_decay = 0.0
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
  return c
