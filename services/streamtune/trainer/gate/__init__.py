"""The quality gate: a candidate version is published only if it is not worse than what is served.
The decision (pure), the judge that scores the candidates for it, and the holdout that feeds it."""
