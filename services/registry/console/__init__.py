"""The registry's web console (served under /console): see app.py."""
