"""The event contract shared by producers, the trainer and the evaluation tools."""

from streamtune.events.schema import Event, InvalidEvent, decode_event

__all__ = ["Event", "InvalidEvent", "decode_event"]
