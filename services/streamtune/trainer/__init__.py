"""The trainer: the online training recipe (service.py) and the rooms around it — the quality
gate, versions and publishing, optimisation guards, and stream monitoring."""
