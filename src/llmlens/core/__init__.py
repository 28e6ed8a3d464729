"""Core: the invocation lifecycle, stream proxies and telemetry."""
