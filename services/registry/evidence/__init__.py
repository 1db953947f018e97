"""A model version's compliance evidence pack (README "Compliance evidence pack"): obligations.yaml (what is
checked), gather.py (what exists: registry records and the artefacts they name), ledger.py (the audit-ledger
entries with their inclusion proofs), check.py (evidenced, partly or gap per obligation), pack.py (the JSON
pack), render.py (its HTML)."""
