"""The audit ledger: one append-only, hash-chained entry per event, leaves of an RFC 9162 Merkle tree whose
heads are signed with Ed25519, so anyone holding the public key can check inclusion and consistency."""
