"""The Lightning callbacks of a training run (the stage switch belongs to :mod:`medviz.methods.stages`).

* :class:`MapSnapshot`: metrics and pictures of the map while it trains.
* :class:`RunState`: RNG states and the run's identity in every checkpoint, for exact resumes.
* :class:`SaveOnInterrupt`: Ctrl-C or SIGTERM leaves a resumable checkpoint.
* :class:`NonFiniteLossGuard`: a NaN or infinite loss stops the run with a clear message.
* :class:`TrainingClock`: each epoch's seconds, and the time left re-estimated as the run trains.
"""

from medviz.training.callbacks.faults import NonFiniteLossError, NonFiniteLossGuard, SaveOnInterrupt
from medviz.training.callbacks.map_snapshot import MapSnapshot
from medviz.training.callbacks.run_state import RunState
from medviz.training.callbacks.training_clock import TrainingClock

__all__ = ["MapSnapshot", "NonFiniteLossError", "NonFiniteLossGuard", "RunState", "SaveOnInterrupt", "TrainingClock"]
