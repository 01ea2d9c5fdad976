"""Build confluent-kafka clients from the settings, including TLS/SASL pass-through."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streamtune.config import Settings
from streamtune.kafka.client_logs import LIBRDKAFKA_LOGGER

logger = logging.getLogger(__name__)

_SECRET_KEYS = ("password", "secret", "token", "key.pem", "sasl.oauthbearer.config")


def client_config(settings: Settings) -> dict[str, object]:
    """Connection properties common to every client: servers, security, extra properties; the
    client's own log lines go to Python logging (see :mod:`streamtune.kafka.client_logs`)."""
    config: dict[str, object] = {"bootstrap.servers": settings.bootstrap_servers, "logger": LIBRDKAFKA_LOGGER}
    if settings.kafka_security_protocol:
        config["security.protocol"] = settings.kafka_security_protocol
    if settings.kafka_sasl_mechanism:
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
    if settings.kafka_sasl_username:
        config["sasl.username"] = settings.kafka_sasl_username
    if settings.kafka_sasl_password:
        config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_ca_location:
        config["ssl.ca.location"] = settings.kafka_ssl_ca_location
    config.update({key: str(value) for key, value in settings.kafka_extra.items()})
    return config


def redacted(config: dict[str, object]) -> dict[str, object]:
    """A copy safe to log: every secret-looking value replaced."""
    return {key: "***" if any(marker in key for marker in _SECRET_KEYS) else value for key, value in config.items()}


def make_producer(settings: Settings, **overrides: object) -> Producer:
    """An idempotent producer (acks=all): a retried send is never written twice."""
    config: dict[str, object] = {
        **client_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        **overrides,
    }
    logger.debug("producer config %s", redacted(config))
    return Producer(config)


class RenewableProducer:
    """A :class:`Producer` that can be swapped for a fresh one while other threads use it.

    An idempotent producer is known to the cluster by its producer id. A cluster that lost its
    state (a restarted memory-only broker) refuses every send of an id it no longer knows, and
    librdkafka retries such a send forever: only a new producer, which is given a new id, can
    send again. :meth:`renew` swaps one in; sends, polls and flushes go to the current one.
    """

    def __init__(self, factory: Callable[[], Producer]) -> None:
        self._factory = factory
        self._lock = threading.Lock()  # a send never goes to a producer that is being retired
        self._producer = factory()

    def produce(self, *args: object, **kwargs: object) -> None:
        with self._lock:
            self._producer.produce(*args, **kwargs)

    def poll(self, timeout: float = 0) -> int:
        return self._producer.poll(timeout)

    def flush(self, timeout: float = -1) -> int:
        return self._producer.flush(timeout)

    def __len__(self) -> int:
        return len(self._producer)

    def renew(self, grace_s: float) -> int:
        """Replace the producer; returns how many messages the old one could not deliver within
        ``grace_s`` and dropped."""
        fresh = self._factory()
        with self._lock:
            old, self._producer = self._producer, fresh
        undelivered = old.flush(grace_s)
        if undelivered:
            old.purge()
            old.flush(0)  # serves the purged messages' delivery reports
        return undelivered


def make_consumer(settings: Settings, group_id: str, **overrides: object) -> Consumer:
    """A consumer that never commits on its own: offsets are committed by the caller."""
    config: dict[str, object] = {
        "fetch.wait.max.ms": settings.kafka_fetch_wait_max_ms,  # STREAMTUNE_KAFKA_EXTRA may override
        **client_config(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "heartbeat.interval.ms": settings.kafka_heartbeat_interval_ms,
        **overrides,
    }
    logger.debug("consumer config %s", redacted(config))
    return Consumer(config)


def ensure_topics(settings: Settings, topics: Iterable[tuple[str, int]], timeout_s: float = 10.0) -> None:
    """Create the given (name, partitions) topics unless they exist already."""
    admin = make_admin(settings)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    create_missing_topics(admin, {name: parts for name, parts in topics if name not in existing}, timeout_s)


def create_missing_topics(admin: AdminClient, topics: dict[str, int], timeout_s: float) -> None:
    """Create ``topics`` (name → partitions); one that exists meanwhile is not an error."""
    if not topics:
        return
    wanted = [NewTopic(name, num_partitions=parts) for name, parts in topics.items()]
    for name, future in admin.create_topics(wanted, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            logger.info("created topic %s", name)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def make_admin(settings: Settings) -> AdminClient:
    """An admin client for the configured cluster."""
    return AdminClient(client_config(settings))
