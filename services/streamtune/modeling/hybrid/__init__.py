"""The hybrid model family: ID embeddings learned online plus cached sentence embeddings.

See :mod:`streamtune.modeling.hybrid.model` (the servable model),
:mod:`streamtune.modeling.hybrid.learner` (online training) and
:mod:`streamtune.modeling.hybrid.versions` (snapshots and deltas).
"""

from streamtune.modeling.hybrid.config import HybridConfig
from streamtune.modeling.hybrid.learner import HybridLearner
from streamtune.modeling.hybrid.model import HybridModel, Prediction

__all__ = ["HybridConfig", "HybridLearner", "HybridModel", "Prediction"]
