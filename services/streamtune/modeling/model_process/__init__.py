"""The model family in a process of its own (``STREAMTUNE_MODEL_PROCESS``).

The trainer's threads share one interpreter lock: the ingest thread's decoding, the trainer's
routing and bookkeeping and the family's step all take turns on one core. A family whose step
is itself mostly Python (the hybrid's id tables) then runs at a fraction of its bare speed.
Here the family lives in a child process, :mod:`~streamtune.modeling.model_process.host`, and
the trainer reaches it through :class:`~streamtune.modeling.model_process.proxy.ProcessFamily`,
which is a :class:`~streamtune.modeling.family.ModelFamily` like any other. Training and
scoring steps are sent without waiting for their results, so the trainer takes and routes the
next batch while the child learns the last; every call runs in the child in the order it was
made, so the model, its versions and the prequential scores are those of the in-process family.
"""

from streamtune.modeling.model_process.proxy import ProcessFamily, uses_model_process

__all__ = ["ProcessFamily", "uses_model_process"]
