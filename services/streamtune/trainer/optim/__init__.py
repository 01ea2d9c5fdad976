"""How the model is stepped on an unbounded stream, and guarded against forgetting what it knew:
the learning-rate schedule, the L2-SP pull towards the start, and the replay buffer."""
