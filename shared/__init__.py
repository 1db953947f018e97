"""tunegate's common library: event contracts, bus wiring, telemetry, configuration, storage helpers."""
