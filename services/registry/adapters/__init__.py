"""Registry adapters: database tables and repositories, the HTTP API."""
