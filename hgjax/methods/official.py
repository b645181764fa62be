"""Official PyTorch checkpoints: the format interface each method fills in, and the pieces the
formats share (tensor layouts, leaf names, hourglass depth from tensor names).

`hgjax.convert` finds the format whose `matches` accepts a state dict, infers the architecture,
builds the hgjax model and maps every hgjax variable to its official tensor name. Layouts:
PyTorch conv weights are OIHW; k x k convs (k > 1) are flax HWIO kernels and 1x1 convs are
`nn.Dense` kernels [C_in, C_out]. BatchNorm weight/bias/running_mean/running_var are
scale/bias (params) and mean/var (batch_stats).
"""

import dataclasses
import re
from collections.abc import Callable
from collections.abc import Mapping

import numpy as np

# (collection, hgjax leaf name) -> official tensor name suffix.
LEAVES = {
    ('params', 'kernel'): 'weight',
    ('params', 'bias'): 'bias',
    ('params', 'scale'): 'weight',
    ('batch_stats', 'mean'): 'running_mean',
    ('batch_stats', 'var'): 'running_var',
}


@dataclasses.dataclass(frozen=True)
class OfficialFormat:
  """One method's official PyTorch checkpoint format (state dicts with wrapper prefixes such as
  `module.` already removed).

  matches(state_dict) -> bool: the tensor names are this format's.
  infer_architecture(state_dict) -> {'kind', and the `config.model` values that build the
    network}, from tensor names and shapes only.
  build_model(arch, dtype) -> the hgjax flax module of such a dict.
  official_name(flat_key) -> str: hgjax variable key (collection, module..., leaf) -> official
    tensor name.
  owns(variables) -> bool: hgjax variables {'params', ...} are this format's network.
  unused(name, expected) -> bool: a tensor the official module holds but never uses (e.g. SHG
    skip convs of equal-width residuals), given the set of expected official names.
  padding(state_dict) -> dict: such unused tensors, to add to a state dict made from hgjax
    variables so that PyTorch's strict `load_state_dict` accepts it.
  note: what the CLI prints about the converted outputs ('' = nothing).
  canonical(state_dict) -> state_dict with the format's own names (e.g. MMPose prefixes
    removed); `matches` and everything after it see these names.
  probe_size(arch) -> the smallest square input side the network of `arch` takes.
  transposed(name) -> bool: the tensor is a transposed convolution's weight, PyTorch layout
    (in, out, kH, kW) (hgjax: [kH, kW, in, out]) instead of (out, in, kH, kW).
  outputs(model, out) -> what the official forward returns, from the outputs of
    `hgjax.convert.apply_official_layout` (default: `out` itself; OpenPose: the stacked stages
    split into its two branches).
  """
  matches: Callable[[Mapping], bool]
  infer_architecture: Callable[[Mapping], dict]
  build_model: Callable[..., object]
  official_name: Callable[[tuple], str]
  owns: Callable[[Mapping], bool]
  unused: Callable[[str, set], bool]
  padding: Callable[[dict], dict]
  note: str
  canonical: Callable[[Mapping], Mapping] = dict
  probe_size: Callable[[Mapping], int] = lambda arch: 4 * 2 ** arch['depth']
  transposed: Callable[[str], bool] = lambda name: False
  outputs: Callable[[object, object], object] = lambda model, out: out


def rename_top(modules: list, table, what: str) -> list:
  """modules[0] (an hgjax top-level module name) renamed by the first matching (regex,
  replacement) of `table`; ValueError if none matches."""
  for pattern, replacement in table:
    if re.fullmatch(pattern, modules[0]):
      return [re.sub(pattern, replacement, modules[0])] + list(modules[1:])
  raise ValueError(f'no official name for hgjax module {modules[0]!r} ({what})')


def shape_of(sd: Mapping, name: str, what: str) -> tuple:
  """The shape of tensor `name`; ValueError naming it and what it is needed for if absent."""
  if name not in sd:
    raise ValueError(f'missing tensor {name!r} (needed to infer the {what})')
  return tuple(np.shape(sd[name]))


def hourglass_depth(sd: Mapping, hourglass_prefix: str) -> int:
  """Hourglass levels = nesting levels `<prefix>(low2.)*n` that contain an `up1`."""
  depth = 0
  while any(k.startswith(hourglass_prefix + 'low2.' * depth + 'up1.') for k in sd):
    depth += 1
  if depth == 0:
    raise ValueError(f'no hourglass tensors {hourglass_prefix}up1.* in the state dict')
  return depth


def num_stacks(sd: Mapping) -> int:
  """Stacks of an official hourglass network: the `outs.<i>.` heads."""
  stacks = {int(m.group(1)) for k in sd if (m := re.match(r'outs\.(\d+)\.', k))}
  return max(stacks) + 1


def has_heads(sd: Mapping) -> bool:
  """Whether the state dict has the `outs.<i>.conv.weight` heads of the hourglass networks."""
  return any(re.match(r'outs\.\d+\.conv\.weight$', k) for k in sd)


def hourglass_architecture(sd: Mapping, kind: str, hourglass_prefix: str, conv: str,
                           batch_norm: bool, default_inner_increase: int) -> dict:
  """The architecture of a princeton-vl hourglass network (SHG `pytorch_stacked_hourglass`, AE
  `pose-ae-train`; both name the stem `pre.*`, the heads `outs.*`): {'kind', 'num_stacks',
  'features', 'num_outputs', 'depth', 'increase' (outermost hourglass level), 'inner_increase'
  (the inner levels; `default_inner_increase`, the code base's default, when a single level
  does not show it), 'batch_norm', 'stem_features'}. `conv` is the suffix of a block's last
  conv weight ('conv3.conv.weight' in an SHG residual, 'conv.weight' in an AE block)."""
  num_outputs = shape_of(sd, 'outs.0.conv.weight', 'number of outputs')[0]
  features = shape_of(sd, f'pre.4.{conv}', 'width')[0]
  depth = hourglass_depth(sd, hourglass_prefix)
  stem = shape_of(sd, f'pre.1.{conv}', 'stem width')[0]
  increase = shape_of(sd, f'{hourglass_prefix}low1.{conv}', 'increase')[0] - features
  inner_increase = default_inner_increase
  if depth > 1:
    inner = shape_of(sd, f'{hourglass_prefix}low2.low1.{conv}', 'inner increase')[0]
    inner_increase = inner - features - increase
  return {'kind': kind, 'num_stacks': num_stacks(sd), 'features': features,
          'num_outputs': num_outputs, 'depth': depth, 'increase': increase,
          'inner_increase': inner_increase, 'batch_norm': batch_norm, 'stem_features': stem}
