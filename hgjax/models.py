"""Builds the network a config asks for."""

import jax.numpy as jnp
import ml_collections

from hgjax import hourglass

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def build_model(config: ml_collections.ConfigDict):
  """The flax module for `config.model` (kind 'shg' or 'ae'); outputs [B, S, h, w, C]."""
  m = config.model
  dtype = DTYPES[m.dtype]
  if m.kind == 'shg':
    return hourglass.StackedHourglass(num_stacks=m.num_stacks, features=m.features,
                                      num_outputs=m.num_outputs, depth=m.depth,
                                      dtype=dtype, stem_features=m.stem_features,
                                      scan_stacks=m.scan_stacks,
                                      remat_stacks=m.remat_stacks)
  if m.kind == 'ae':
    from hgjax import ae_net
    return ae_net.AssociativeEmbeddingNet(
        num_stacks=m.num_stacks, features=m.features, increase=m.increase,
        inner_increase=m.inner_increase, num_outputs=m.num_outputs,
        batch_norm=m.batch_norm, depth=m.depth, dtype=dtype,
        stem_features=m.stem_features)
  raise ValueError(f"config.model.kind={m.kind!r}; valid: 'shg', 'ae'")
