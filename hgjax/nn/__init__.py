"""Networks and their layers (flax.linen, NHWC): shared layers, the residual Stacked
Hourglass and the plain-conv Associative Embedding hourglass. Methods build them from configs."""
