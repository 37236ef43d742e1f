"""Training: setup -> step -> hooks (the loop), the run's state and knobs, modes, distributed helpers, logging."""
from gan.training.hooks import Hook, call_hooks, default_hooks
from gan.training.loop import step, train
from gan.training.run import KNOBS, KnobError, Run, TrainingError, setup

__all__ = ["train", "setup", "step", "Run", "KNOBS", "KnobError", "TrainingError", "Hook", "call_hooks",
           "default_hooks"]
