"""The one thin layer over confluent-kafka: client configuration, topics, records."""
