"""Git sync and diff adapters."""
