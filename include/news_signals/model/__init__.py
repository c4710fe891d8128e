"""The multi-head transformer: modeling, training, artifact, inference, evaluation."""
