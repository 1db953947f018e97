"""Event bus wiring: FastStream RedisBroker, consumer groups, at-least-once delivery, reclaim, dead letters."""
