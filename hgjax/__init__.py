"""hgjax: Stacked Hourglass and Associative Embedding pose estimation in JAX/Flax."""
