"""The method interface: what every pose method provides, as one frozen dataclass of functions.

A method is one module under `hgjax/methods/` that ends with `METHOD = Method(...)`; the table
`hgjax.methods.METHODS` maps `config.model.kind` to it. The runners (`train`, `predict`,
`bench`, `api`, the evaluators) reach method-specific code only through these functions, so a
new method is one new module plus one table entry (docs/adding_a_method.md).

Array conventions (docs/design.md): images NHWC; keypoints [..., K, 3] = (x, y, v) in 0-based
input pixels with pixel centres at integers; network outputs [B, S, h, w, C] (S stages, h = H /
stride); "maps" are dicts of named arrays cut from one stage's channels, e.g. {'heatmaps':
[..., h, w, K], 'tags': [..., h, w, K * D]}.
"""

import dataclasses
from collections.abc import Callable
from collections.abc import Hashable
from typing import Any

import jax.numpy as jnp

from hgjax import skeleton
from hgjax.methods import official as official_format

# config.model.dtype -> compute dtype (parameters stay float32).
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class Method:
  """One pose method's functions. Each field documents its signature.

  name: the `config.model.kind` that selects it.
  multi_person: True for bottom-up methods (whole images, COCO-style evaluation, grouping),
    False for single-person ones (person crops, PCKh).
  target_stride: input pixels per pixel of the training targets and masks (the network's
    output stride; `config.dataset.heatmap_stride` must equal it): 4 for SHG, AE and
    HigherHRNet's 1/4 grid, 8 for OpenPose.
  build_model(config) -> flax.linen.Module with `init(rng, images, train=False)` and
    `apply(variables, images, train=...)`: images float32 [B, H, W, 3] as returned by
    `normalize_images`; outputs float32 [B, S, h, w, C] (S supervised stages at one
    resolution), or a tuple of [B, h_i, w_i, C_i] (HigherHRNet: one per resolution).
  input_multiple(config) -> int: H and W of an input must be multiples of it.
  map_stride(config) -> int: input pixels per pixel of the maps `predict_maps` returns.
  normalize_images(images uint8 [B, H, W, 3]) -> float32 [B, H, W, 3]: the network's input
    normalisation (jnp, runs inside jit).
  num_outputs(config) -> int: the output channels one stage needs (checked against
    `config.model.num_outputs`, which may be larger).
  settings(config) -> a hashable, frozen value: everything static the jitted functions below
    read (sizes, loss weights, flip permutation, ...).
  render_targets(batch, settings) -> dict of device arrays: the training targets from a batch
    {'keypoints' [B, P, K, 3] input pixels, optional 'mask' [B, h, w]} (jnp, runs inside jit).
  loss(outputs [B, S, h, w, C], targets, settings) -> (total scalar, {name: scalar}): the
    training loss and the named terms that are logged as `train/<name>`.
  predict_maps(variables, images uint8 [B, H, W, 3], *, model, settings) -> dict of maps of the
    last stage [B, h, w, ...] (normalised as above; flip test merged in when the settings ask
    for it); jittable.
  encode(config, keypoints [P, K, 3], image_hw) -> dict of numpy target maps [h, w, C] at
    output resolution, in the names and channel layout of `split_outputs` (ideal maps: what a
    perfect network would output for these people).
  decode(config, maps, image_hw) -> (people [N, K, 3] (x, y, score) in input pixels, person
    scores [N]): `maps` as returned by `encode` (or `split_outputs` of one image's stage).
  split_outputs(config, outputs [..., C]) -> dict of maps in the names of `encode`.
  group(config, maps) -> (people [N, K, 3] (u, v, score) in output-grid pixels, scores [N]):
    the parsing step of `decode` alone (before the grid -> pixel map), numpy, one image; maps
    as `predict_maps` returns them for one image. Single-person methods return one person.
  parse(config, maps_a, maps_b) -> (people [N, K, 3] (x, y, score) in map pixels, scores [N]):
    `group` on maps in the official code bases' layouts (AE: heatmaps [K, H, W], tags
    [K, H, W, L]; SHG: heatmaps [K, H, W], maps_b unused), for `api.parse_heatmaps`.
  official: the `official.OfficialFormat` of the authors' PyTorch checkpoints (`hgjax.convert`),
    or None.
  """
  name: str
  multi_person: bool
  target_stride: int
  build_model: Callable[..., Any]
  input_multiple: Callable[..., int]
  map_stride: Callable[..., int]
  normalize_images: Callable[..., Any]
  num_outputs: Callable[..., int]
  settings: Callable[..., Hashable]
  render_targets: Callable[..., dict]
  loss: Callable[..., tuple]
  predict_maps: Callable[..., dict]
  encode: Callable[..., dict]
  decode: Callable[..., tuple]
  split_outputs: Callable[..., dict]
  group: Callable[..., tuple]
  parse: Callable[..., tuple]
  official: official_format.OfficialFormat | None


def compute_dtype(config):
  """The jnp compute dtype of `config.model.dtype`."""
  return DTYPES[config.model.dtype]


def flip_perm(config) -> tuple | None:
  """The joint permutation of the flip test (`skeleton.flip_for`), None without it."""
  if not config.eval.flip_test:
    return None
  return tuple(int(j) for j in skeleton.flip_for(config.dataset.num_joints))


def unit_rgb(images):
  """uint8 [B, H, W, 3] -> float32 in [0, 1]: RGB / 255, the input scaling of the official
  Stacked Hourglass and Associative Embedding code."""
  return images.astype(jnp.float32) / 255.0


def hourglass_input_multiple(config) -> int:
  """The stride-4 stem and `depth` 2x poolings of an hourglass network."""
  return config.dataset.heatmap_stride * 2 ** config.model.depth


def heatmap_stride(config) -> int:
  """Input pixels per output pixel: maps at the network's single output resolution."""
  return config.dataset.heatmap_stride
