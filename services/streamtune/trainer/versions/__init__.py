"""Versions: what the trainer writes into each one, when, and in which order with Kafka offsets.
The ledger of a version in the making, the publish cadence, the publisher, version files, lineage."""
