"""The local stack `tunegate up` runs: the embedded Redis, its users, and the process supervisor."""
