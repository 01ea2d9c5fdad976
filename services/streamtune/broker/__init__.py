"""An embedded Kafka-compatible broker for development, tests and `streamtune up`."""

from streamtune.broker.embedded import EmbeddedBroker, find_broker_binary

__all__ = ["EmbeddedBroker", "find_broker_binary"]
