"""Bundled example job files (the demo uses them)."""
