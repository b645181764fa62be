"""Evaluation: the official metrics (MPII PCKh, COCO OKS AP through pycocotools), MPII
prediction files and submissions, and the evaluation loops that turn a method's outputs into
those metrics (`evaluators.make_evaluator`)."""
