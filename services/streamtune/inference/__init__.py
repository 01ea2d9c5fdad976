"""The inference service: serves the newest good version and swaps without dropping requests."""
