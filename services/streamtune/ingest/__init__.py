"""Ingest: Kafka records → validated events → micro-batches of TrainingBatch for the trainer,
with dead letters, back-pressure and the trained position; event_stream.py is its face to it."""
