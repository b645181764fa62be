"""The evaluator of a config: the dataset decides the protocol, the method decodes its outputs.

Every evaluator has `run(state, step, writer, workdir) -> metrics dict` (state: anything with
`params` and `batch_stats`).
"""

from hgjax import datasets
from hgjax.evaluation import multi_person
from hgjax.evaluation import single_person


def make_evaluator(config, method, model, mesh):
  """Multi-person datasets: COCO AP of whole images (`multi_person.MultiPersonEvaluator`);
  single-person ones: PCKh of person crops (`single_person.SinglePersonEvaluator`, the first
  `config.eval.num_examples` crops when >= 0)."""
  dataset = datasets.dataset_for(config)
  if method.multi_person != dataset.multi_person:
    raise ValueError(f'config.model.kind={method.name!r} cannot be evaluated on '
                     f'config.dataset.name={config.dataset.name!r}')
  data = dataset.eval_data(config)
  if dataset.multi_person:
    return multi_person.MultiPersonEvaluator(config, method, model, mesh, *data)
  n = config.eval.num_examples
  if n >= 0:
    data = tuple(a[:n] for a in data)
  return single_person.SinglePersonEvaluator(config, method, model, mesh, *data,
                                             mpii_format=dataset.mpii_format)
