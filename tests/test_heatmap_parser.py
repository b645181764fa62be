"""The HigherHRNet parser against the official one: tests/data/hhr_parser_cases.npz holds
constructed heatmaps and tags (spurious peaks, weak joints filled by refinement, plateaus,
L = 1 and 2, close tags, more than 30 people, nobody) and what the official
`HeatmapParser.parse` (HRNet/HigherHRNet-Human-Pose-Estimation lib/core/group.py, torch 2.13,
munkres 1.1.4) returned for them (written by tests/data/make_parser_cases.py). On plateaus the
official order of tied pixels is torch's `topk` order, which torch leaves unspecified; those cases
were made with ties in raster order, the order hgjax uses."""

from pathlib import Path

import numpy as np
import pytest

from hgjax import api
from hgjax import heatmap_parser

CASES = np.load(Path(__file__).parent / 'data' / 'hhr_parser_cases.npz')
NUM_CASES = len({k.split('/')[0] for k in CASES.files})


@pytest.mark.parametrize('case', range(NUM_CASES))
def test_parser_equals_the_official_one(case):
  c = {k.split('/')[1]: CASES[k] for k in CASES.files if k.startswith(f'case{case}/')}
  detection, tag_threshold, adjust, refine, _ = c['params']
  params = heatmap_parser.ParserParams(detection_threshold=detection,
                                       tag_threshold=tag_threshold, adjust=bool(adjust),
                                       refine=bool(refine))
  people, scores = heatmap_parser.parse(c['heatmaps'], c['tags'], params)
  assert people.shape == c['people'].shape          # the same people, in the same order
  np.testing.assert_array_equal(people, c['people'])
  np.testing.assert_array_equal(scores, c['scores'])


def test_cases_cover_what_they_claim():
  """The fixture exercises refinement (joints filled), L = 2, more than 30 people."""
  dims = {CASES[f'case{i}/tags'].shape[-1] for i in range(NUM_CASES)}
  assert dims == {1, 2}
  assert max(len(CASES[f'case{i}/people']) for i in range(NUM_CASES)) > 30
  assert len(CASES['case8/people']) == 0
  # Case 2 has weak joints below the threshold: refinement filled some (heat value < 0.1).
  filled = CASES['case2/people'][..., 2]
  assert np.any((filled > 0) & (filled < 0.1))


def test_api_parse_heatmaps_with_the_default_config_is_the_official_parser():
  people, scores = api.parse_heatmaps(CASES['case4/heatmaps'], CASES['case4/tags'],
                                      'higherhrnet')
  np.testing.assert_array_equal(people, CASES['case4/people'])
  np.testing.assert_array_equal(scores, CASES['case4/scores'])
