"""Event contract: the envelope (envelope.py), typed payloads (payloads.py), the catalog of types and their
streams (catalog.py), stream names (streams.py). Import the module you need: this package loads nothing."""
