"""OpenPose (Cao et al., CVPR 2017): bottom-up pose with confidence maps and part affinity fields
(PAFs), refined over T stages, and a greedy limb-matching parser.

Exact to the official code (ZheC/Realtime_Multi-Person_Pose_Estimation, the CVPR'17 Caffe
graph and data layer; specification in shared/docs/methods/openpose.md) where marked:
- Input: the official BGR x / 256 - 0.5 (hgjax images are RGB, so the channels are reversed
  here; `normalize_images`).
- Network: `hgjax.nn.openpose.OpenPose` (VGG-19 trunk + CPM convs, stage 1 with two branches,
  stages 2..T with 7x7 convs on concat[PAFs, heatmaps, F]); outputs [B, T, H/8, W/8, C] with
  per stage the channels [PAFs (C_paf), heatmaps (C_heat, background last)]. Input sides must
  be multiples of 8 (refused otherwise, see the network module).
- Loss: the official Caffe EuclideanLoss of every stage and both branches, on maps multiplied
  by the mask (prediction and target both): sum over (c, h, w) and the batch of
  (w * pred - w * gt)^2 / (2 B), summed over the 2 T terms with weight 1.
"""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np

from hgjax import paf_parser
from hgjax import paf_targets
from hgjax.methods import base
from hgjax.methods import official
from hgjax.nn import openpose as openpose_net


def build_model(config) -> openpose_net.OpenPose:
  """The OpenPose network of `config.model` (the `model.openpose_*` keys)."""
  return _build_official(config.model.to_dict(), base.compute_dtype(config))


def input_multiple(config) -> int:
  """The three 2x max-pools: input sides must be multiples of 8."""
  del config
  return openpose_net.STRIDE


def map_stride(config) -> int:
  """Input pixels per pixel of `predict_maps`' maps: 1 with `eval.project_to_input` (the
  official demo parses at image resolution), else the network's stride 8."""
  return 1 if config.eval.project_to_input else openpose_net.STRIDE


def normalize_images(images):
  """uint8 RGB [B, H, W, 3] -> float32 [B, H, W, 3]: BGR x / 256 - 0.5 (the official input)."""
  return images[..., ::-1].astype(jnp.float32) / 256.0 - 0.5


def num_outputs(config) -> int:
  """PAF channels (2 per limb) + heatmap channels (parts + background) of one stage."""
  return config.model.openpose_paf_channels + config.model.openpose_heatmap_channels


def split_outputs(config, outputs) -> dict:
  """One stage's channels [..., C_paf + C_heat] -> {'pafs' [..., C_paf], 'heatmaps'
  [..., C_heat]} (PAF limb c at 2c (x) and 2c + 1 (y); heatmaps with the background last)."""
  p = config.model.openpose_paf_channels
  return {'pafs': outputs[..., :p],
          'heatmaps': outputs[..., p:p + config.model.openpose_heatmap_channels]}


# --- training -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
  """The static (hashable) values of a config that the jitted OpenPose functions read."""
  paf_channels: int
  heatmap_channels: int
  stride: int
  grid_size: int                # network output side for the training input
  sigma_px: float               # confidence-map Gaussian std in input pixels (official 7)
  heatmap_mode: str             # 'max' (2019) | 'sum_clip' (CVPR'17 data layer)
  paf_mode: str                 # 'average' (2019) | 'overwrite' (CVPR'17: last person wins)
  limb_width: float             # PAF half-width in grid cells (official 1)
  flip: bool                    # flip test in predict_maps
  project_to_input: bool        # predict_maps resizes the maps to the input size (cubic)


def settings(config) -> Settings:
  d, t, m = config.dataset, config.targets, config.model
  if (m.openpose_paf_channels, m.openpose_heatmap_channels) != (2 * paf_targets.NUM_LIMBS,
                                                                paf_targets.NUM_PARTS + 1):
    raise ValueError(
        f'config.model.openpose_paf_channels={m.openpose_paf_channels}, '
        f'openpose_heatmap_channels={m.openpose_heatmap_channels}: training and parsing use the '
        f'COCO-18 parts (38 PAF and 19 heatmap channels); other graphs (MPI) only convert')
  if d.num_joints != 17:
    raise ValueError(f'config.dataset.num_joints={d.num_joints}: OpenPose here trains on COCO-17 '
                     'keypoints (the 18 parts add the neck)')
  return Settings(paf_channels=m.openpose_paf_channels,
                  heatmap_channels=m.openpose_heatmap_channels,
                  stride=openpose_net.STRIDE,
                  grid_size=d.image_size // openpose_net.STRIDE,
                  sigma_px=float(t.openpose_sigma_px), heatmap_mode=t.openpose_heatmap_mode,
                  paf_mode=t.openpose_paf_mode, limb_width=float(t.openpose_limb_width),
                  flip=bool(config.eval.flip_test),
                  project_to_input=bool(config.eval.project_to_input))


def _targets(keypoints17, grid_hw, s: Settings):
  """keypoints [..., P, 17, 3] input pixels -> (heatmaps [..., h, w, 19], pafs [..., h, w, 38])."""
  kp18 = paf_targets.coco17_to_18(keypoints17)
  heat = paf_targets.render_confidence_maps(kp18, grid_hw, s.stride, s.sigma_px, s.heatmap_mode)
  pafs = paf_targets.render_pafs(kp18, grid_hw, s.stride, s.limb_width, s.paf_mode)
  return heat, pafs


def render_targets(batch, s: Settings) -> dict:
  """batch {'keypoints' [B, P, 17, 3] input pixels, optional 'mask' [B, h, w] at stride 8} ->
  {'pafs' [B, h, w, 38], 'heatmaps' [B, h, w, 19], 'mask' [B, h, w]} (the names `loss` reads;
  no mask = every cell counts)."""
  kp = batch['keypoints']
  h = s.grid_size
  heat, pafs = _targets(kp, (h, h), s)
  mask = batch['mask'] if 'mask' in batch else jnp.ones(kp.shape[:1] + (h, h), jnp.float32)
  return {'pafs': pafs, 'heatmaps': heat, 'mask': mask.astype(jnp.float32)}


def euclidean_loss(pred, target, weight):
  """Caffe EuclideanLoss of masked maps, per stage: pred [B, T, h, w, C], target [B, h, w, C],
  weight [B, h, w] -> [T]: sum over (b, h, w, c) of (w * pred - w * target)^2 / (2 B)."""
  w = weight[:, None, :, :, None]
  diff = w * pred - w * target[:, None]
  return jnp.sum(jnp.square(diff), axis=(0, 2, 3, 4)) / (2.0 * pred.shape[0])


def loss(outputs, targets: dict, s: Settings):
  """outputs [B, T, h, w, C_paf + C_heat] -> (total, {'paf_loss', 'heatmap_loss'}): the official
  loss, the sum over stages and both branches of `euclidean_loss` with weight 1 (the mask
  enters squared); the terms are the sums over stages of each branch.
  targets: {'pafs' [B, h, w, C_paf], 'heatmaps' [B, h, w, C_heat], 'mask' [B, h, w]}."""
  p, k = s.paf_channels, s.heatmap_channels
  paf = euclidean_loss(outputs[..., :p], targets['pafs'], targets['mask']).sum()
  heat = euclidean_loss(outputs[..., p:p + k], targets['heatmaps'], targets['mask']).sum()
  return paf + heat, {'paf_loss': paf, 'heatmap_loss': heat}


# --- inference ----------------------------------------------------------------------------------

def resize_maps(x, hw):
  """[B, h, w, C] -> [B, H, W, C] by bicubic interpolation with half-pixel centres (the official
  demo's `cv2.resize(..., INTER_CUBIC)`; jax's kernel is Keys' a = -0.5, OpenCV's a = -0.75)."""
  if x.shape[1:3] == tuple(hw):
    return x
  return jax.image.resize(x, (x.shape[0],) + tuple(hw) + (x.shape[-1],), 'cubic')


def predict_maps(variables, images, *, model, settings: Settings) -> dict:
  """images uint8 [B, H, W, 3] -> {'heatmaps' [B, h, w, 19], 'pafs' [B, h, w, 38]} of the last
  stage, at the input size with `project_to_input` (the demo's x8 cubic resize), else at stride
  8. Flip test: the mirrored image's maps flipped back (R/L channels swapped, PAF x negated)
  and averaged with the plain ones."""
  x = normalize_images(images)
  b = images.shape[0]
  if settings.flip:
    x = jnp.concatenate([x, x[:, :, ::-1]], axis=0)
  out = model.apply(variables, x, train=False)[:, -1]
  p, k = settings.paf_channels, settings.heatmap_channels
  heat, pafs = out[..., p:p + k], out[..., :p]
  if settings.project_to_input:
    heat, pafs = resize_maps(heat, images.shape[1:3]), resize_maps(pafs, images.shape[1:3])
  if settings.flip:
    heat_back, pafs_back = paf_targets.flip_back(heat[b:], pafs[b:])
    heat = 0.5 * (heat[:b] + heat_back)
    pafs = 0.5 * (pafs[:b] + pafs_back)
  return {'heatmaps': heat, 'pafs': pafs}


def parse(config, heatmaps, pafs):
  """The official parser (`hgjax.paf_parser`, style `config.grouping.openpose_style`) on maps
  at image resolution: heatmaps [H, W, 19], pafs [H, W, 38] -> (people [P, 18, 3] (x, y, peak
  score; missing parts 0, 0, 0) in map pixels, scores [P] = part + connection scores)."""
  return paf_parser.parse(np.asarray(heatmaps, np.float64), np.asarray(pafs, np.float64),
                          style=config.grouping.openpose_style)


def _best_coco17(config, heat, pafs):
  """`parse` on maps at image resolution -> (people [N, 17, 3] float64 in map pixels, neck
  dropped, scores [N]), best first, at most config.grouping.max_people."""
  people18, scores = parse(config, heat, pafs)
  people = paf_targets.coco18_to_17(people18).astype(np.float64)
  best = np.argsort(-scores, kind='stable')[:config.grouping.max_people]
  return people[best], scores[best]


def group(config, maps: dict):
  """{'heatmaps' [H, W, 19], 'pafs' [H, W, 38]} of one image at `map_stride` -> (people
  [N, 17, 3] (u, v, score) in map pixels, COCO-17 order (neck dropped; missing joints score 0),
  scores [N]) best first, at most config.grouping.max_people. The parser runs at the maps'
  resolution; with `eval.project_to_input` False they are first resized to input size here
  (cubic), and the positions mapped back to the grid."""
  heat = np.asarray(maps['heatmaps'], np.float32)
  pafs = np.asarray(maps['pafs'], np.float32)
  stride = map_stride(config)
  if stride != 1:
    hw = (heat.shape[0] * stride, heat.shape[1] * stride)
    heat = np.asarray(resize_maps(heat[None], hw)[0])
    pafs = np.asarray(resize_maps(pafs[None], hw)[0])
  people, scores = _best_coco17(config, heat, pafs)
  if stride != 1:
    people[..., :2] = (people[..., :2] + 0.5) / stride - 0.5
  return people, scores


def encode(config, keypoints, image_hw) -> dict:
  """people [P, 17, 3] (x, y, v) input pixels -> ideal maps at stride 8 in the `split_outputs`
  layout: {'pafs' [h, w, 38], 'heatmaps' [h, w, 19]} (the training targets of `render_targets`)."""
  s = settings(config)
  hw = tuple(int(n) // openpose_net.STRIDE for n in image_hw)
  heat, pafs = _targets(jnp.asarray(np.asarray(keypoints, np.float32)[None]), hw, s)
  return {'pafs': np.asarray(pafs[0]), 'heatmaps': np.asarray(heat[0])}


def decode(config, maps: dict, image_hw):
  """{'pafs' [h, w, 38], 'heatmaps' [h, w, 19]} (the `encode` layout, stride 8) -> (people
  [N, 17, 3] (x, y, score) in input pixels, scores [N]): resized to the image (cubic), parsed."""
  hw = tuple(int(n) for n in image_hw)
  heat = np.asarray(resize_maps(jnp.asarray(maps['heatmaps'], jnp.float32)[None], hw)[0])
  pafs = np.asarray(resize_maps(jnp.asarray(maps['pafs'], jnp.float32)[None], hw)[0])
  return _best_coco17(config, heat, pafs)


# --- official checkpoints: the converted CVPR'17 Caffe model in the PyTorch naming of
# Hzzone/pytorch-openpose `bodypose_model` (`model0.conv1_1.weight`,
# `model2_1.Mconv1_stage2_L1.weight`, ...) or of its released `body_pose_model.pth` (the same
# names without the first component) ---------------------------------------------------------------

# A layer name without its group -> the group (`model0`, `model1_{b}`, `model{t}_{b}`).
_GROUPS = (
    (re.compile(r'conv\d+_\d+(?:_CPM)?'), lambda m: 'model0'),
    (re.compile(r'conv5_\d+_CPM_L([12])'), lambda m: f'model1_{m.group(1)}'),
    (re.compile(r'Mconv\d+_stage(\d+)_L([12])'), lambda m: f'model{m.group(1)}_{m.group(2)}'),
)
_LEAVES = ('weight', 'bias')
_GROUPED = re.compile(r'model(?:0|\d+_[12])\.(?:M?conv)\w*\.(?:weight|bias)')


def _group_of(name: str) -> str | None:
  """The group of a bare tensor name such as 'Mconv1_stage2_L1.weight', None if it is not an
  OpenPose layer's."""
  layer, _, leaf = name.rpartition('.')
  if leaf not in _LEAVES:
    return None
  for pattern, group in _GROUPS:
    if m := pattern.fullmatch(layer):
      return group(m)
  return None


def _canonical(sd) -> dict:
  """The released names (`conv1_1.weight`) with their group added (`model0.conv1_1.weight`),
  as Hzzone's `util.transfer` does; other names unchanged."""
  out = {}
  for name, value in sd.items():
    group = _group_of(name)
    out[f'{group}.{name}' if group else name] = value
  return out


def _matches(sd) -> bool:
  return any(_GROUPED.fullmatch(name) for name in sd)


def _infer_architecture(sd) -> dict:
  """{'kind': 'openpose', 'openpose_trunk_widths', 'openpose_stages', 'openpose_stage1_widths',
  'openpose_stage_widths', 'openpose_paf_channels', 'openpose_heatmap_channels', 'num_outputs'}
  from tensor names and shapes (the branch L1 = PAFs, L2 = heatmaps; both branches of a stage
  have the same widths in the official graphs, checked with every other shape on conversion)."""
  shape = official.shape_of
  trunk = tuple(shape(sd, f'model0.{n}.weight', 'trunk widths')[0]
                for n in openpose_net.TRUNK_LAYERS)
  s1 = openpose_net.STAGE1_CONVS
  stage1 = (shape(sd, 'model1_1.conv5_1_CPM_L1.weight', 'stage-1 widths')[0],
            shape(sd, f'model1_1.conv5_{s1 + 1}_CPM_L1.weight', 'stage-1 widths')[0])
  pafs = shape(sd, f'model1_1.conv5_{s1 + 2}_CPM_L1.weight', 'PAF channels')[0]
  heatmaps = shape(sd, f'model1_2.conv5_{s1 + 2}_CPM_L2.weight', 'heatmap channels')[0]
  stages = 1
  while f'model{stages + 1}_1.Mconv1_stage{stages + 1}_L1.weight' in sd:
    stages += 1
  later = (128, 128)             # the official widths; unused by a 1-stage network
  if stages > 1:
    later = (shape(sd, 'model2_1.Mconv1_stage2_L1.weight', 'stage widths')[0],
             shape(sd, f'model2_1.Mconv{openpose_net.STAGE_CONVS + 1}_stage2_L1.weight',
                   'stage widths')[0])
  return {'kind': 'openpose', 'openpose_trunk_widths': trunk, 'openpose_stages': stages,
          'openpose_stage1_widths': stage1, 'openpose_stage_widths': later,
          'openpose_paf_channels': pafs, 'openpose_heatmap_channels': heatmaps,
          'num_outputs': pafs + heatmaps}


def _build_official(arch, dtype=jnp.float32) -> openpose_net.OpenPose:
  return openpose_net.OpenPose(
      stages=arch['openpose_stages'], paf_channels=arch['openpose_paf_channels'],
      heatmap_channels=arch['openpose_heatmap_channels'],
      trunk_widths=tuple(arch['openpose_trunk_widths']),
      stage1_widths=tuple(arch['openpose_stage1_widths']),
      stage_widths=tuple(arch['openpose_stage_widths']), dtype=dtype)


def _official_name(flat_key: tuple) -> str:
  """('params', 'model2_1', 'Mconv1_stage2_L1', 'kernel') -> 'model2_1.Mconv1_stage2_L1.weight'."""
  collection, leaf = flat_key[0], flat_key[-1]
  return '.'.join(list(flat_key[1:-1]) + [official.LEAVES[(collection, leaf)]])


def _official_outputs(model: openpose_net.OpenPose, outputs):
  """[B, T, C_paf + C_heat, h, w] -> (pafs [T, B, C_paf, h, w], heatmaps [T, B, C_heat, h, w]):
  every stage's two branch outputs, as the official graph computes them."""
  p = model.paf_channels
  return outputs[:, :, :p].swapaxes(0, 1), outputs[:, :, p:].swapaxes(0, 1)


OFFICIAL = official.OfficialFormat(
    matches=_matches, infer_architecture=_infer_architecture, build_model=_build_official,
    official_name=_official_name, owns=lambda variables: 'model0' in variables['params'],
    unused=lambda name, expected: False, padding=lambda sd: {},
    note='run_official returns (PAFs, heatmaps), each [stages, B, C, H/8, W/8], before any '
    'activation; inputs BGR uint8 / 256 - 0.5 (the official code; hgjax reverses RGB itself)',
    canonical=_canonical, probe_size=lambda arch: openpose_net.STRIDE,
    outputs=_official_outputs)


METHOD = base.Method(
    name='openpose', multi_person=True, target_stride=openpose_net.STRIDE, build_model=build_model,
    input_multiple=input_multiple, map_stride=map_stride, normalize_images=normalize_images,
    num_outputs=num_outputs, settings=settings, render_targets=render_targets, loss=loss,
    predict_maps=predict_maps, encode=encode, decode=decode, split_outputs=split_outputs,
    group=group, parse=parse, official=OFFICIAL)
