"""Named errors of streamtune; messages say what was wrong and what to do."""


class StreamtuneError(Exception):
    """Base class of every error streamtune raises on purpose."""


class ConfigurationError(StreamtuneError):
    """A setting is missing or inconsistent."""


class BrokerError(StreamtuneError):
    """The embedded broker could not be found or started."""


class CheckpointError(StreamtuneError):
    """A version in the checkpoint store is missing, incomplete or corrupt."""


class PublishError(CheckpointError):
    """A version could not be written; the store is left as it was."""


class ModelLoadError(StreamtuneError):
    """A version could not be loaded for serving; the previous one keeps serving."""


class QueueFullError(StreamtuneError):
    """The inference queue is full; the client should retry shortly (HTTP 429)."""


class ModelNotReadyError(StreamtuneError):
    """No version is loaded yet, or the server is shutting down (HTTP 503)."""


class LineageMovedError(PublishError):
    """LATEST no longer names the version a draft was trained from (a rollback happened)."""


class ModelProcessError(StreamtuneError):
    """The trainer's model process exited; the trainer stops and resumes from its newest version."""
