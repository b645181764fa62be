"""The CVPR'17 OpenPose network (Cao et al., "Realtime Multi-Person 2D Pose Estimation using Part
Affinity Fields") in flax.linen, NHWC; exact to the official Caffe graph
(CMU-Perceptual-Computing-Lab/openpose models/pose/coco/pose_deploy_linevec.prototxt;
specification in shared/docs/methods/openpose.md section 1).

Graph (official widths in brackets; all configurable):
- trunk F: VGG-19 conv1_1, conv1_2 [64], pool, conv2_1, conv2_2 [128], pool, conv3_1..conv3_4
  [256], pool, conv4_1, conv4_2 [512], then conv4_3_CPM [256], conv4_4_CPM [128]; every conv
  3x3 (padding 1) + ReLU; pools 2x2 max, stride 2 -> F at stride 8.
- stage 1, two branches from F: L1 (PAFs) and L2 (heatmaps), each conv5_1..conv5_3_CPM_L{b}
  [128] (3x3 + ReLU), conv5_4_CPM_L{b} [512] (1x1 + ReLU), conv5_5_CPM_L{b} (1x1) to the PAF
  [38] or heatmap [19, incl. background] channels.
- stages t = 2..T [T = 6], each branch on concat[PAF_{t-1}, heatmaps_{t-1}, F] (this channel
  order): Mconv1..Mconv5_stage{t}_L{b} [128] (7x7 padding 3 + ReLU), Mconv6 [128] (1x1 + ReLU),
  Mconv7 (1x1) to the PAF / heatmap channels.
No activation after any branch output (the widely copied PyTorch port ReLUs the final heatmaps;
the official graph does not).

Input sides must be multiples of 8 (`STRIDE`): the network raises a ValueError naming the size
otherwise (Caffe pools round up and PyTorch pools round down, so other sizes have no single
official answer; the official demos pad to a multiple of 8 first, which is the caller's job).

Output: float32 [B, T, H/8, W/8, C_paf + C_heat], per stage the channels [PAFs, heatmaps]
(PAF limb c at channels 2c (x) and 2c + 1 (y), the official training order; heatmaps in the
official part order, background last). This is hgjax's [B, S, h, w, C] stage layout; the
official C++ concatenates its final output the other way round ([heatmaps, PAFs]).

Module names are the official layer names, grouped as the state dict of the converted official
weights groups them (`model0` = trunk, `model1_1` / `model1_2` = stage-1 branches L1 / L2,
`model{t}_{b}` = stage t branch b), so the converter maps names with one rule. 1x1 convs are
`nn.Dense` (same parameters, faster on XLA:CPU; see `layers`). Initialisation: the official
training init N(0, 0.01) weights and zero biases for every conv after conv4_2 (the official
code initialises conv1_1..conv4_2 from ImageNet VGG-19; from scratch they get He-normal).
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from hgjax.nn.layers import conv_general_dilated
from hgjax.nn.layers import max_pool_2x2

STRIDE = 8
# The trunk's conv names (official), and the convs each 2x2 max-pool follows.
TRUNK_LAYERS = ('conv1_1', 'conv1_2', 'conv2_1', 'conv2_2', 'conv3_1', 'conv3_2', 'conv3_3',
                'conv3_4', 'conv4_1', 'conv4_2', 'conv4_3_CPM', 'conv4_4_CPM')
POOL_AFTER = ('conv1_2', 'conv2_2', 'conv3_4')
# Trunk convs the official code initialises from ImageNet VGG-19 (conv1_1..conv4_2).
VGG_LAYERS = TRUNK_LAYERS[:10]
TRUNK_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 256, 128)   # official
STAGE1_CONVS = 3                # 3x3 convs per stage-1 branch (conv5_1..conv5_3_CPM)
STAGE_CONVS = 5                 # 7x7 convs per later branch (Mconv1..Mconv5)
STAGE_KERNEL = 7
BRANCHES = (1, 2)               # L1 = PAFs, L2 = heatmaps

OFFICIAL_INIT = nn.initializers.normal(0.01)
VGG_INIT = nn.initializers.he_normal()


def conv(features: int, kernel: int, dtype, name: str, init=OFFICIAL_INIT) -> nn.Module:
  """A k x k conv with bias and 'same' padding (k odd): nn.Dense for k = 1, else nn.Conv with
  the fast kernel gradient. [B, H, W, C_in] -> [B, H, W, features]."""
  if kernel == 1:
    return nn.Dense(features, dtype=dtype, kernel_init=init, name=name)
  return nn.Conv(features, (kernel, kernel), padding=kernel // 2, dtype=dtype, kernel_init=init,
                 name=name, conv_general_dilated=conv_general_dilated)


class Trunk(nn.Module):
  """The official `model0`: images [B, H, W, 3] (H, W multiples of 8) -> F [B, H/8, W/8,
  widths[-1]]; one 3x3 conv + ReLU per entry of `widths` (the layers of `TRUNK_LAYERS`)."""
  widths: tuple = TRUNK_WIDTHS
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    if len(self.widths) != len(TRUNK_LAYERS):
      raise ValueError(f'OpenPose trunk: {len(TRUNK_LAYERS)} widths needed '
                       f'({", ".join(TRUNK_LAYERS)}), got {self.widths}')
    for name, width in zip(TRUNK_LAYERS, self.widths, strict=True):
      init = VGG_INIT if name in VGG_LAYERS else OFFICIAL_INIT
      x = nn.relu(conv(width, 3, self.dtype, name, init)(x))
      if name in POOL_AFTER:
        x = max_pool_2x2(x)
    return x


class Stage1Branch(nn.Module):
  """The official `model1_{branch}`: F [B, h, w, C_F] -> [B, h, w, outputs] (no activation):
  3 x (3x3 conv `width` + ReLU), 1x1 conv `wide` + ReLU, 1x1 conv `outputs`."""
  branch: int
  outputs: int
  width: int = 128
  wide: int = 512
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, dt = self.branch, self.dtype
    for i in range(1, STAGE1_CONVS + 1):
      x = nn.relu(conv(self.width, 3, dt, f'conv5_{i}_CPM_L{b}')(x))
    x = nn.relu(conv(self.wide, 1, dt, f'conv5_{STAGE1_CONVS + 1}_CPM_L{b}')(x))
    out_dt = jnp.promote_types(dt, jnp.float32)
    return conv(self.outputs, 1, out_dt, f'conv5_{STAGE1_CONVS + 2}_CPM_L{b}')(x)


class StageBranch(nn.Module):
  """The official `model{stage}_{branch}` (stage >= 2): concat [B, h, w, C_in] -> [B, h, w,
  outputs] (no activation): 5 x (7x7 conv `width` + ReLU), 1x1 conv `wide` + ReLU, 1x1 conv
  `outputs`."""
  stage: int
  branch: int
  outputs: int
  width: int = 128
  wide: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    t, b, dt = self.stage, self.branch, self.dtype
    for i in range(1, STAGE_CONVS + 1):
      x = nn.relu(conv(self.width, STAGE_KERNEL, dt, f'Mconv{i}_stage{t}_L{b}')(x))
    x = nn.relu(conv(self.wide, 1, dt, f'Mconv{STAGE_CONVS + 1}_stage{t}_L{b}')(x))
    out_dt = jnp.promote_types(dt, jnp.float32)
    return conv(self.outputs, 1, out_dt, f'Mconv{STAGE_CONVS + 2}_stage{t}_L{b}')(x)


class OpenPose(nn.Module):
  """images float32 [B, H, W, 3] (BGR / 256 - 0.5; H, W multiples of 8) -> float32
  [B, stages, H/8, W/8, paf_channels + heatmap_channels]: every stage's [PAFs, heatmaps].

  trunk_widths: the 12 trunk convs (`TRUNK_LAYERS`). stage1_widths: (3x3 width, 1x1 width) of
  the stage-1 branches; stage_widths: (7x7 width, 1x1 width) of the branches of stages 2..T.
  The `train` argument is accepted for the common model interface (no BatchNorm, no dropout).
  """
  stages: int = 6
  paf_channels: int = 38
  heatmap_channels: int = 19
  trunk_widths: tuple = TRUNK_WIDTHS
  stage1_widths: tuple = (128, 512)
  stage_widths: tuple = (128, 128)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images, train: bool = False):
    del train
    h, w = images.shape[1:3]
    if h % STRIDE or w % STRIDE:
      raise ValueError(f'OpenPose: input size {h}x{w} (H x W) is not a multiple of {STRIDE} '
                       '(pad the image to a multiple of 8 first, as the official demos do)')
    if self.stages < 1:
      raise ValueError(f'OpenPose: stages={self.stages} must be >= 1')
    dt = self.dtype
    features = Trunk(tuple(self.trunk_widths), dtype=dt, name='model0')(images.astype(dt))
    channels = (self.paf_channels, self.heatmap_channels)
    outs = [Stage1Branch(b, c, *self.stage1_widths, dtype=dt, name=f'model1_{b}')(features)
            for b, c in zip(BRANCHES, channels, strict=True)]
    stages = [jnp.concatenate(outs, axis=-1)]
    for t in range(2, self.stages + 1):
      x = jnp.concatenate([stages[-1].astype(dt), features], axis=-1)
      outs = [StageBranch(t, b, c, *self.stage_widths, dtype=dt, name=f'model{t}_{b}')(x)
              for b, c in zip(BRANCHES, channels, strict=True)]
      stages.append(jnp.concatenate(outs, axis=-1))
    return jnp.stack(stages, axis=1).astype(jnp.promote_types(dt, jnp.float32))
