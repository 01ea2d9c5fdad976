"""The trainer: online fine-tuning from the event stream, publishing versions."""
