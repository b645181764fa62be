"""2-stack hourglass on MPII: the paper's settings with two stacks."""

from experiments import mpii


def get_config():
  c = mpii.get_config()
  c.model.num_stacks = 2
  return c
