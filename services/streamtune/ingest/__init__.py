"""Ingest: Kafka records → validated events → tokenized micro-batches for the trainer."""
