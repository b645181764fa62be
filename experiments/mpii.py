"""8-stack hourglass on MPII with the paper's settings (RMSprop 2.5e-4, 256 px, batch 6)."""

from hgjax import defaults


def get_config():
  return defaults.get_config()
