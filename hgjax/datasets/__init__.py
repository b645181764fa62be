"""Datasets: procedural synthetic people, MPII, COCO and the grain input pipelines."""
