"""Associative Embedding on synthetic multi-person scenes, CPU sized (the embedded AE default).

Scenes of 1-3 overlapping figures (height 0.4-0.9 of the image) at 128 px, COCO joints,
scored by pycocotools on held-out scenes. The network is the released AE architecture, small:
2 stacks, 64 features widening by 32 per level, tag dimension 1.

No flip test and no flip augmentation: the figures' left limbs are warm-coloured and right limbs
cool-coloured, a convention a mirror image breaks (the flipped figure's warm limbs would be
labelled right), so flipping would make left/right ill-posed.
"""

from hgjax import defaults


def get_config():
  c = defaults.get_config()
  c.dataset.name = 'synthetic_scenes'
  c.dataset.num_joints = 17
  c.dataset.image_size = 128
  c.dataset.max_people = 3
  c.dataset.synthetic_num_eval = 200
  # The network sees 32x32 heatmaps. Figures of 0.25-0.8 x 128 px (median 62 px) are 3-8x
  # smaller in heatmap pixels than COCO people in the paper's 512 px input, and OKS tolerates
  # only ~1 px on the face there: AP 0.026 at step 1000 with ground-truth grouping giving 0.093
  # (measured). 0.4-0.9 keeps sizes varied at about twice the scale.
  c.dataset.scene_height_min = 0.4
  c.dataset.scene_height_max = 0.9

  # Gaussian sigma in heatmap pixels. The paper's 2 is relative to 128 px heatmaps; on these
  # 32 px ones it is ~3x wider relative to the figures. With the decoding below, 5000 steps:
  # sigma 2 AP 0.483 (the earlier README run's checkpoint, re-decoded), 1.5 AP 0.540; sigma 1 learnt
  # slower (AP 0.487 at step 5000, 0.515 after 6000 steps). Measured on validation.
  c.targets.sigma = 1.5

  c.model.kind = 'ae'
  c.model.num_stacks = 2
  c.model.features = 64
  c.model.increase = 32
  c.model.inner_increase = 32
  c.model.depth = 3
  c.model.stem_features = 64
  c.model.num_outputs = 34        # 17 heatmaps + 17 tag channels
  c.model.batch_norm = True
  # 1-D tags as in the paper. Grouping costs ~0.09-0.10 AP here: with ground-truth ("oracle")
  # tags the step-6300 checkpoint of a 1-D run scored 0.658 instead of 0.567 (200 test scenes;
  # 38 % of person pairs had mean tags closer than the 1.0 threshold). 2-D tags (margin 1.5,
  # 1.06 apart in grouping's RMS distance) closed that gap in a 2000-step run (0.070 -> 0.011)
  # but not in a full one: 0.534 vs oracle 0.633 at step 5300, AP 0.524 on validation.
  c.model.tag_dim = 1

  # As experiments/synthetic.py: without it the heatmaps sat at the all-zeros solution (AP
  # 0.001 after 500 steps, measured).
  c.loss.foreground_weight = 20.0
  # The paper's 1e-3 balances the tags against an unweighted heatmap MSE (~1e-3 per pixel).
  # Next to the foreground-weighted MSE (0.15 at step 1000 here) the tags got too little
  # gradient at 1e-3: grouping failed outright (AP 0.014 at step 1000). At 1.0 the tags
  # separated sooner (0.86 apart at step 1000 vs 0.52 at 0.1), but the heatmaps stalled
  # (AP 0.000 at step 1000). 0.1 groups well by the end: oracle tags add only 0.09 AP (measured).
  c.loss.push_weight = 0.1
  c.loss.pull_weight = 0.1
  # With the exp push the tags collapsed to one value for everyone (push at its maximum 0.5,
  # where its gradient vanishes: push gradient 14x smaller than pull at step 500, measured);
  # the margin form's gradient there is ~30x larger, and the tags separate (runs in README).
  c.loss.push_form = 'margin'

  c.optimizer.name = 'adam'
  c.optimizer.learning_rate = 2e-3
  c.optimizer.schedule = 'cosine'
  c.optimizer.warmup_steps = 400
  # The cosine runs over whichever of num_steps and max_minutes ends first: host speed here
  # varies (11-22 examples/s measured), and a run cut by the budget still ends annealed.
  c.optimizer.pace = 'budget'

  # Batch 4 as experiments/synthetic.py (more updates per example: better at equal examples).
  c.train.batch_size = 4
  # The cosine spans the whole budget on a fast host: 9000 steps took 22.4 training minutes at
  # a median 26.7 examples/s (2026-12-07 05:02 run: AP 0.632, 23 min 50 s in all; 6500 steps
  # gave 0.606 in 18 min 9 s). On a slower host the 25-minute budget ends training first and
  # the budget pace above still anneals the cosine. Compilation and evaluations added 1.4
  # minutes to that run and 2.5 to a 27-minute-budget run at 14-17 examples/s (measured), so
  # the command stays under 30 minutes.
  c.train.num_steps = 9000
  c.train.max_minutes = 25.0
  c.train.log_every = 100
  c.train.checkpoint_every = 1000
  c.train.eval_every = 1000
  c.train.eval_at_start = True
  c.train.num_workers = 1

  c.eval.batch_size = 50
  c.eval.flip_test = False
  # Decoding settings chosen on 200 scenes of the synthetic 'test' split (the reported AP is on
  # 'validation') with the step-5400 checkpoint of a 25-minute run. The reference code's
  # decoding (detection threshold 0.1, refinement, quarter offsets, one scale) gave AP 0.246 on
  # validation. Threshold 0.4 without refinement gave 0.472 on test: refinement filled every
  # fragment's missing joints, which lifted the scores of wrong people. Adding the Taylor
  # sub-pixel step gave 0.493, and scales (1, 1.25) 0.517.
  c.eval.refine = 'taylor'

  c.grouping.detection_threshold = 0.4
  # The margin-1 push leaves people's tags about 1 apart, and the matching cost rounds tag
  # distances, so every distance below 0.5 counted as 0. Measuring them in half units (scale 2,
  # threshold 1.5, i.e. 0.75 in tag units) with the step-6500 checkpoint of the 2026-12-07
  # 04:30 run: AP 0.588 -> 0.599 on 200 test scenes (scale 1.5: 0.597, 3: 0.578, 5: 0.542;
  # threshold 0.5 at scale 1: 0.586); on validation 0.601 -> 0.606.
  c.grouping.tag_scale = 2.0
  c.grouping.tag_threshold = 1.5
  # Refinement fills the missing joints' positions (a missing joint scores OKS 0 wherever it
  # is exported), but the person keeps the score of its matched joints: AP 0.469 -> 0.503 on
  # 200 test scenes with the step-5000 checkpoint of the README run (filling the scores too:
  # 0.405).
  c.grouping.refine = True
  c.grouping.refine_scores = False
  c.grouping.scales = (1.0, 1.25)
  return c
