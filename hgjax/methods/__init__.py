"""Pose methods, one module each, and the one table from `config.model.kind` to them.

This is the only place in `hgjax/` that looks at `config.model.kind`: everything else asks
`method_for(config)` and calls the functions of the `base.Method` it returns.
"""

from hgjax.methods import ae
from hgjax.methods import higherhrnet
from hgjax.methods import openpose
from hgjax.methods import shg
from hgjax.methods.base import Method

METHODS: dict[str, Method] = {
    'shg': shg.METHOD,
    'ae': ae.METHOD,
    'higherhrnet': higherhrnet.METHOD,
    'openpose': openpose.METHOD,
}


def method_named(kind: str) -> Method:
  """The method registered as `kind` ('shg', 'ae', ...); ValueError naming the valid ones."""
  if kind not in METHODS:
    raise ValueError(f'model kind {kind!r} is not one of {", ".join(map(repr, METHODS))}')
  return METHODS[kind]


def method_for(config) -> Method:
  """The method of `config.model.kind`."""
  try:
    return method_named(config.model.kind)
  except ValueError:
    raise ValueError(f'config.model.kind={config.model.kind!r} is not one of '
                     f'{", ".join(map(repr, METHODS))}') from None
