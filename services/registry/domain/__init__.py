"""Pure registry logic: no database, no Redis, no HTTP."""
