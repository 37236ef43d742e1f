"""Training: the loop, checkpoints, distributed helpers, logging."""
from gan.training.loop import TrainingError, train

__all__ = ["train", "TrainingError"]
