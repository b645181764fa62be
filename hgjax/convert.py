"""Load the authors' PyTorch checkpoints into hgjax models, numerically exactly.

Every method with an official checkpoint format (`methods.<kind>.OFFICIAL`, an
`official.OfficialFormat`) is supported: today princeton-vl/pytorch_stacked_hourglass `PoseNet`
(kind 'shg', built as `hgjax.nn.hourglass.StackedHourglass`) and princeton-vl/pose-ae-train
`PoseNet` (kind 'ae', built as `hgjax.nn.ae_hourglass.AssociativeEmbeddingNet`). The format and
the architecture (stacks, width, outputs, hourglass depth, increase, BatchNorm) are inferred from
the tensor names and shapes only.

Layouts: PyTorch conv weights are OIHW; k x k convs (k > 1) become flax HWIO kernels and 1x1
convs become `nn.Dense` kernels [C_in, C_out]. BatchNorm weight/bias/running_mean/running_var
become scale/bias (params) and mean/var (batch_stats). `num_batches_tracked` and tensors the
official modules hold but never use (the format's `unused`, e.g. the SHG `skip_layer` convs of
equal-width residuals) are ignored.

Input normalisation: both official code bases feed the network RGB images as float32 in
[0, 1] (uint8 / 255, no mean/std subtraction), NHWC. A converted model expects exactly that.

CLI:
  python -m hgjax.convert CHECKPOINT --out DIR
CHECKPOINT is an `.npz` of the state dict (keys optionally prefixed `state_dict/`) or a PyTorch
`.pt/.pth/.tar` (needs the optional `torch` extra). Writes the orbax checkpoint
`DIR/variables` ({'params', 'batch_stats'}) and `DIR/model_config.json` (the config values of
the inferred architecture), and prints the matching `--config.model.*` overrides.
"""

import argparse
import functools
import json
from collections.abc import Mapping
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from hgjax import methods
from hgjax.methods import official

_WRAPPER_PREFIXES = ('module.', 'model.')
_MAX_LISTED = 30


# ----------------------------------------------------------------------------- names, layouts


def _to_torch_layout(x: np.ndarray, transposed: bool = False) -> np.ndarray:
  """hgjax array -> PyTorch layout: HWIO -> OIHW (a transposed conv's [kH, kW, in, out] ->
  (in, out, kH, kW)), Dense [I, O] -> [O, I, 1, 1], else as is."""
  if x.ndim == 4:
    return np.transpose(x, (2, 3, 0, 1) if transposed else (3, 2, 0, 1))
  if x.ndim == 2:
    return np.transpose(x)[:, :, None, None]
  return x


def _from_torch_layout(w: np.ndarray, flax_ndim: int, transposed: bool = False) -> np.ndarray:
  """Inverse of `_to_torch_layout` for an hgjax array of `flax_ndim` dimensions."""
  if flax_ndim == 4:
    return np.transpose(w, (2, 3, 0, 1) if transposed else (2, 3, 1, 0))
  if flax_ndim == 2:
    return np.transpose(w[:, :, 0, 0])
  return w


def _torch_shape(flax_shape: tuple[int, ...], transposed: bool = False) -> tuple[int, ...]:
  """PyTorch shape of the tensor that `_to_torch_layout` makes from an hgjax array."""
  if len(flax_shape) == 4:
    h, w, i, o = flax_shape
    return (i, o, h, w) if transposed else (o, i, h, w)
  if len(flax_shape) == 2:
    i, o = flax_shape
    return (o, i, 1, 1)
  return tuple(flax_shape)


# ----------------------------------------------------------------------------- architecture


def _strip_wrappers(state_dict: Mapping) -> dict:
  """Drops DataParallel / trainer prefixes (`module.`, `model.module.`) from the names."""
  out = {}
  for name, value in state_dict.items():
    short = name
    while short.startswith(_WRAPPER_PREFIXES):
      short = short.split('.', 1)[1]
    if short in out:
      raise ValueError(f'tensor names collide after removing wrapper prefixes: {name!r}')
    out[short] = value
  return out


def _as_float32(value) -> np.ndarray:
  """Floating tensors as float32 numpy arrays (float16 checkpoints are common)."""
  value = np.asarray(value)
  return value.astype(np.float32) if np.issubdtype(value.dtype, np.floating) else value


def official_format(state_dict: Mapping) -> tuple[official.OfficialFormat, dict]:
  """(format, the state dict in the format's canonical names) of a state dict with wrapper
  prefixes removed; ValueError if no method's format accepts its tensor names."""
  for method in methods.METHODS.values():
    if method.official is not None:
      canonical = method.official.canonical(state_dict)
      if method.official.matches(canonical):
        return method.official, canonical
  kinds = [m.name for m in methods.METHODS.values() if m.official is not None]
  raise ValueError(f'not an official checkpoint of any of {kinds}: no format accepts tensor '
                   f'names such as {sorted(state_dict)[:5]}')


def infer_architecture(state_dict: Mapping) -> dict:
  """Architecture of an official state dict, from tensor names and shapes only: {'kind': the
  method, and the `config.model` values that build it} (see the method's format)."""
  fmt, sd = official_format(_strip_wrappers(state_dict))
  return fmt.infer_architecture(sd)


def build_model(arch: Mapping, dtype=jnp.float32) -> nn.Module:
  """The hgjax model of an `infer_architecture` dict."""
  fmt = methods.method_named(arch['kind']).official
  if fmt is None:
    raise ValueError(f'model kind {arch["kind"]!r} has no official checkpoint format')
  return fmt.build_model(arch, dtype)


def _variable_shapes(model: nn.Module, size: int) -> dict[tuple[str, ...], tuple[int, ...]]:
  images = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  abstract = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), images)
  return {k: v.shape for k, v in traverse_util.flatten_dict(abstract).items()}


# ----------------------------------------------------------------------------- conversion


def convert_state_dict(state_dict: Mapping) -> tuple[nn.Module, dict]:
  """Official state dict (PyTorch name -> array) -> (hgjax model, variables).

  variables = {'params': ..., 'batch_stats': ...} as numpy float32 arrays (batch_stats is {}
  for an AE model without BatchNorm). Raises one ValueError naming every missing or unexpected
  tensor and every misshapen tensor with its expected and actual PyTorch shape.
  """
  fmt, sd = official_format(_strip_wrappers(state_dict))
  sd = {k: _as_float32(v) for k, v in sd.items()}
  arch = fmt.infer_architecture(sd)
  model = fmt.build_model(arch, jnp.float32)
  shapes = _variable_shapes(model, fmt.probe_size(arch))
  expected = {fmt.official_name(key): key for key in shapes}

  missing, misshapen, flat = [], [], {}
  for name, key in expected.items():
    if name not in sd:
      missing.append(name)
      continue
    want = _torch_shape(shapes[key], fmt.transposed(name))
    got = tuple(sd[name].shape)
    if got != want:
      misshapen.append(f'{name}: expected {want}, got {got}')
      continue
    flat[key] = np.ascontiguousarray(
        _from_torch_layout(sd[name], len(shapes[key]), fmt.transposed(name)), dtype=np.float32)
  unexpected = [n for n in sd if n not in expected and not n.endswith('.num_batches_tracked')
                and not fmt.unused(n, set(expected))]

  if missing or unexpected or misshapen:
    lines = [f'state dict does not match the inferred {arch["kind"]} architecture {arch}:']
    for title, items in (('missing', missing), ('unexpected', unexpected),
                         ('misshapen', misshapen)):
      if items:
        shown = items[:_MAX_LISTED]
        more = f' ... and {len(items) - len(shown)} more' if len(items) > len(shown) else ''
        lines.append(f'  {title} tensors ({len(items)}): ' + ', '.join(shown) + more)
    raise ValueError('\n'.join(lines))

  variables = traverse_util.unflatten_dict(flat)
  variables.setdefault('batch_stats', {})
  return model, variables


def to_official_state_dict(variables: Mapping) -> dict[str, np.ndarray]:
  """hgjax variables -> official PyTorch state dict (name -> float32 numpy, PyTorch layouts).

  Also emits what the official modules carry but hgjax does not use, so that PyTorch's
  strict `load_state_dict` accepts it: the format's `padding` (SHG: zero `skip_layer` convs
  for residuals with equal widths) and `num_batches_tracked` = 0 for every BatchNorm.
  """
  owners = [m.official for m in methods.METHODS.values()
            if m.official is not None and m.official.owns(variables)]
  if not owners:
    raise ValueError('variables are not those of a network with an official checkpoint format')
  fmt = owners[0]
  flat = traverse_util.flatten_dict({k: variables[k] for k in ('params', 'batch_stats')
                                     if k in variables})
  sd = {}
  for key, value in flat.items():
    name = fmt.official_name(key)
    sd[name] = _to_torch_layout(np.asarray(value, np.float32), fmt.transposed(name))
  for name in list(sd):
    if name.endswith('.running_mean'):
      sd[name[:-len('running_mean')] + 'num_batches_tracked'] = np.zeros((), np.int64)
  sd.update(fmt.padding(sd))
  return sd


@functools.partial(jax.jit, static_argnums=0)
def _apply_nchw(model: nn.Module, variables, images):
  out = model.apply(variables, images, train=False)
  if isinstance(out, tuple):                       # one output per resolution (HigherHRNet)
    return [o.transpose(0, 3, 1, 2) for o in out]
  return out.transpose(0, 1, 4, 2, 3)


def apply_official_layout(model: nn.Module, variables: Mapping, images_nhwc: np.ndarray):
  """Runs an hgjax model in eval mode and returns its outputs in the official layout, with
  full-precision float32 matmuls/convolutions: [B, S, C, H/4, W/4] float32 for the hourglass
  networks (every stack), a list of [B, C_i, H_i, W_i] for networks with one output per
  resolution (HigherHRNet: [out0 (B, 34, H/4, W/4), out1 (B, 17, H/2, W/2)])."""
  with jax.default_matmul_precision('highest'):
    out = _apply_nchw(model, variables, jnp.asarray(images_nhwc, jnp.float32))
  return [np.asarray(o) for o in out] if isinstance(out, list) else np.asarray(out)


def run_official(state_dict: Mapping, images_nhwc: np.ndarray):
  """The official network's outputs, in the official layout (see `apply_official_layout`; the
  format's `outputs` arranges them as the official forward returns them: OpenPose gives (PAFs,
  heatmaps), each [T, B, C, H/8, W/8], every stage's branch output before any activation).

  state_dict: PyTorch name -> array (float16 is cast to float32). images_nhwc: [B, H, W, 3]
  float, as fed to the official forward (SHG, AE: RGB / 255; HigherHRNet: ImageNet-normalised;
  OpenPose: BGR / 256 - 0.5).
  """
  fmt, _ = official_format(_strip_wrappers(state_dict))
  model, variables = convert_state_dict(state_dict)
  return fmt.outputs(model, apply_official_layout(model, variables, images_nhwc))


def load_pretrained(variables: Mapping, state_dict: Mapping, model_kind: str) -> tuple:
  """Copies into `variables` every tensor of `state_dict` that the network has under the same
  official name (e.g. an ImageNet HRNet classification checkpoint into HigherHRNet's backbone,
  as the official `init_weights` with PRETRAINED_LAYERS ['*']).

  Returns (new variables (numpy), loaded names, checkpoint names the network does not have,
  network names the checkpoint does not have). A tensor whose shape does not fit (e.g. another
  stem) is refused with a ValueError naming it and both shapes: nothing is loaded partially.
  """
  fmt = methods.method_named(model_kind).official
  if fmt is None:
    raise ValueError(f'model kind {model_kind!r} has no official checkpoint format')
  sd = {k: _as_float32(v) for k, v in fmt.canonical(_strip_wrappers(state_dict)).items()}
  flat = traverse_util.flatten_dict({k: variables[k] for k in ('params', 'batch_stats')
                                     if k in variables})
  names = {fmt.official_name(key): key for key in flat}
  out = {key: np.asarray(value) for key, value in flat.items()}
  loaded, misfit = [], []
  for name, value in sd.items():
    if name not in names:
      continue
    key = names[name]
    want = _torch_shape(tuple(out[key].shape), fmt.transposed(name))
    if tuple(value.shape) != want:
      misfit.append(f'{name}: expected {want}, got {tuple(value.shape)}')
      continue
    out[key] = _from_torch_layout(value, out[key].ndim, fmt.transposed(name)).astype(np.float32)
    loaded.append(name)
  if misfit:
    raise ValueError(f'pretrained checkpoint does not fit the {model_kind} network: '
                     + '; '.join(misfit[:_MAX_LISTED]) + ' (nothing was loaded)')
  if not loaded:
    raise ValueError(f'pretrained checkpoint shares no tensor name with the {model_kind} '
                     f'network (its names: {sorted(sd)[:5]} ...)')
  extra = sorted(n for n in sd if n not in names and not n.endswith('.num_batches_tracked'))
  absent = sorted(n for n in names if n not in sd)
  return traverse_util.unflatten_dict(out), loaded, extra, absent


# ----------------------------------------------------------------------------- files, CLI


def load_state_dict_file(path: str | Path, allow_pickle: bool = False) -> dict[str, np.ndarray]:
  """Reads an official state dict from `.npz` or a PyTorch checkpoint (`.pt/.pth/.tar`).

  `.npz`: keys prefixed `state_dict/` if any key is (other arrays are ignored), else all keys.
  PyTorch: needs torch; unwraps `{'state_dict': ...}` checkpoints. Wrapper prefixes such as
  `module.` are removed later by `convert_state_dict`. Returns name -> numpy array.
  """
  path = Path(path)
  if path.suffix == '.npz':
    with np.load(path) as z:
      prefixed = [k for k in z.files if k.startswith('state_dict/')]
      if prefixed:
        return {k[len('state_dict/'):]: z[k] for k in prefixed}
      return {k: z[k] for k in z.files}
  try:
    import torch  # noqa: PLC0415  (optional dependency, only for PyTorch checkpoints)
  except ImportError:
    raise SystemExit(f'{path}: reading PyTorch checkpoints needs PyTorch, which is not '
                     'installed: pip install torch==2.13.0 (the optional extra `torch`), or '
                     'save the state dict as an .npz of numpy arrays') from None
  obj = torch.load(path, map_location='cpu', weights_only=not allow_pickle)
  return state_dict_from_checkpoint(obj)


def state_dict_from_checkpoint(obj) -> dict[str, np.ndarray]:
  """Unwraps `{'state_dict': sd, ...}` (possibly nested) and converts tensors to numpy."""
  while isinstance(obj, Mapping) and isinstance(obj.get('state_dict'), Mapping):
    obj = obj['state_dict']
  if not isinstance(obj, Mapping):
    raise ValueError(f'checkpoint holds a {type(obj).__name__}, not a state dict')
  out = {}
  for name, value in obj.items():
    if hasattr(value, 'detach'):  # a torch.Tensor
      value = value.detach().cpu()
      if value.is_floating_point():
        value = value.float()  # numpy has no bfloat16
      value = value.numpy()
    out[name] = np.asarray(value)
  return out


# Architecture keys that are not `config.model` keys.
_CONFIG_SECTION = {'num_joints': 'dataset'}


def model_config(arch: Mapping) -> dict:
  """Config values (`model.<key>`, `dataset.num_joints`) that build the model of an
  `infer_architecture` dict."""
  return {f'{_CONFIG_SECTION.get(k, "model")}.{k}': v for k, v in arch.items()}


def save_converted(out_dir: str | Path, variables: Mapping, arch: Mapping) -> None:
  """Writes `out_dir/variables` (orbax) and `out_dir/model_config.json`."""
  import orbax.checkpoint as ocp  # noqa: PLC0415  (slow import, only needed here)

  out_dir = Path(out_dir).resolve()
  out_dir.mkdir(parents=True, exist_ok=True)
  state = {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(out_dir / 'variables', state, force=True)
  config = model_config(arch)
  (out_dir / 'model_config.json').write_text(json.dumps(config, indent=1) + '\n')


def build_note(arch: Mapping) -> str:
  """What the CLI says about the outputs of a converted model of this architecture."""
  return methods.method_named(arch['kind']).official.note


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      prog='python -m hgjax.convert',
      description='Convert an official PyTorch checkpoint (Stacked Hourglass, Associative '
      'Embedding) into an hgjax orbax checkpoint.')
  parser.add_argument('checkpoint', help='.npz state dict or PyTorch .pt/.pth/.tar')
  parser.add_argument('--out', required=True, help='output directory')
  parser.add_argument('--allow-pickle', action='store_true',
                      help='let torch.load unpickle arbitrary objects (trusted files only)')
  args = parser.parse_args(argv)

  state_dict = load_state_dict_file(args.checkpoint, allow_pickle=args.allow_pickle)
  _, variables = convert_state_dict(state_dict)
  arch = infer_architecture(state_dict)
  save_converted(args.out, variables, arch)
  out = Path(args.out).resolve()
  n_params = sum(np.size(x) for x in jax.tree.leaves(variables['params']))
  print(f'converted {arch["kind"]} model ({n_params} parameters) to {out / "variables"}')
  print('inputs: RGB float32 in [0, 1] (uint8 / 255), NHWC, as the official code feeds them')
  overrides = ' '.join(f'--config.{k}={v}' for k, v in model_config(arch).items())
  print(f'config: {overrides} --config.init_checkpoint={out}')
  note = build_note(arch)
  if note:
    print(f'note: {note}')


if __name__ == '__main__':
  main()
