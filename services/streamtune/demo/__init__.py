"""``streamtune demo``: a small synthetic stream with known tastes and a drift, shown learning."""
