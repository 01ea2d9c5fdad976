"""Watching the stream's quality as it is trained: rolling prequential (test-then-train) scores
and the Page-Hinkley drift test whose alarm re-warms the learning rate."""
