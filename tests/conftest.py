"""Shared pytest fixtures."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def shared_data() -> Path:
  """The real fixture data folder; a missing folder fails the test instead of skipping it."""
  path = Path(os.environ.get('HGJAX_SHARED_DATA', REPO.parent / 'shared' / 'data'))
  if not (path / 'README.md').exists():
    pytest.fail(f'shared fixture data not found at {path} (set HGJAX_SHARED_DATA)')
  return path
