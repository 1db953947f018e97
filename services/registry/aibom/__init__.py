"""The AIBOM of a model version (docs/aibom.md): facts.py (inputs), build.py + modelcard.py (the CycloneDX 1.6
document), canonical.py (its bytes), schema.py (validation against the official schema), verify.py (a file
against the audit ledger). Pure: nothing here reads anything but the schema files cyclonedx-python-lib ships."""
