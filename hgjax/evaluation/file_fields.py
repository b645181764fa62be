"""Numeric fields of MATLAB .mat and JSON files, with errors that name the file and the field."""

import json
from pathlib import Path

import numpy as np


def numeric(value, path, name):
  try:
    return np.asarray(value, dtype=np.float64)
  except (ValueError, TypeError) as e:
    raise ValueError(f'{path}: field {name!r} is not a numeric array ({e})') from e


def field(data, path, name, shape_desc, check):
  if name not in data:
    raise ValueError(f'{path}: missing field {name!r} ({shape_desc} expected)')
  value = numeric(data[name], path, name)
  if not check(value.shape):
    raise ValueError(f'{path}: field {name!r} has shape {value.shape}, expected {shape_desc}')
  return value


def loadmat(path):
  import scipy.io  # Imported here: most users of these modules never read .mat files.
  try:
    return scipy.io.loadmat(str(path))
  except (ValueError, NotImplementedError, OSError) as e:
    raise ValueError(f'{path}: not a readable MATLAB .mat file ({e})') from e


def load_json(path):
  try:
    return json.loads(Path(path).read_text())
  except json.JSONDecodeError as e:
    raise ValueError(f'{path}: not valid JSON ({e})') from e
