"""Keys, envelope signatures and the rules of who may emit what (docs/security.md)."""
