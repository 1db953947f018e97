"""Redaction through presidio-anonymizer: replace with the entity tag, mask, or keyed hash."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

from services.scanner.domain.findings import Decided
from services.scanner.domain.policy import Action, Operator
from shared.security.keys import load_or_create_secret

HASH_KEY_BYTES = 32


def load_or_create_hash_key(path: Path) -> bytes:
    """The installation's redaction key: keyed hashes are stable across scans (joins keep working) but
    cannot be reversed by hashing guesses without the key. Created once, readable only by its owner."""
    return load_or_create_secret(path, nbytes=HASH_KEY_BYTES, what="redaction key")


class Redactor:
    def __init__(self, hash_key: bytes) -> None:
        if len(hash_key) < 16:
            raise ValueError("redaction hash key must be at least 16 bytes")
        self._hash_key = hash_key
        self._engine = AnonymizerEngine()

    def _operator(self, entity: str, operator: Operator, params: dict[str, object]) -> OperatorConfig:
        if operator == Operator.REPLACE:
            return OperatorConfig("replace", {"new_value": f"<{entity}>", **params})
        if operator == Operator.MASK:
            return OperatorConfig("mask", {"masking_char": "*", "chars_to_mask": 10_000, "from_end": False, **params})
        return OperatorConfig("hash", {"hash_type": "sha256", **params, "salt": self._hash_key})

    def redact(self, text: str, decided: Sequence[Decided]) -> str:
        """Apply the redact decisions to one text field (other actions are not the redactor's business)."""
        results: list[RecognizerResult] = []
        operators: dict[str, OperatorConfig] = {}
        keys: dict[tuple[str, str, str], str] = {}
        for item in decided:
            if item.action != Action.REDACT:
                continue
            rule = item.rule
            signature = (item.span.entity, rule.operator.value, repr(sorted(rule.params.items())))
            key = keys.get(signature)
            if key is None:
                # presidio-anonymizer keys operators by entity type; distinct keys let one entity carry
                # different operators (score tiers) within the same text.
                key = keys[signature] = f"{item.span.entity}#{len(keys)}"
                operators[key] = self._operator(item.span.entity, rule.operator, rule.params)
            results.append(RecognizerResult(key, item.span.start, item.span.end, item.span.score))
        if not results:
            return text
        return self._engine.anonymize(text, results, operators).text
