"""Bundled registry policy files (YAML)."""
