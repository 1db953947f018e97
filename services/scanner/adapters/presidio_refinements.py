"""Presidio's card and US SSN recognizers, with the two checks their regexes lack.

Token boundaries: Presidio's patterns start at `\\b`, which holds between "-" and a digit, so the tail of a
marketplace order number (556-5403092-1120525) or of a hyphenated ISBN (978-84-7689-767-6) is read as a card
or an SSN. A match that continues a hyphenated or dotted digit token on either side is dropped.

Card networks: Presidio accepts any Luhn-valid 13 to 19 digits after a 1, 3, 4, 5 or 6, so one EAN-13 barcode
in ten (French and German ones start with 3 and 4) is a "card". Issuers print numbers of fixed lengths per
prefix (ISO/IEC 7812 ranges as the networks publish them); a number of a length its network never issues is
dropped."""

from __future__ import annotations

from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, UsSsnRecognizer

# (prefixes, lengths): the longest matching prefix decides.
_CARD_NETWORKS: tuple[tuple[tuple[str, ...], frozenset[int]], ...] = (
    (("4",), frozenset({13, 16, 19})),  # Visa
    (tuple(str(p) for p in range(51, 56)), frozenset({16})),  # Mastercard
    (("34", "37"), frozenset({15})),  # American Express
    (("300", "301", "302", "303", "304", "305", "36", "38", "39"), frozenset({14, 15, 16, 17, 18, 19})),  # Diners
    (tuple(str(p) for p in range(3528, 3590)), frozenset({16, 17, 18, 19})),  # JCB
    (("6011", "65", *(str(p) for p in range(644, 650))), frozenset({16, 17, 18, 19})),  # Discover
    (("62",), frozenset({16, 17, 18, 19})),  # UnionPay
    (("5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763"), frozenset(range(12, 20))),  # Maestro
    (("1",), frozenset({15})),  # UATP
)


def card_length_fits(digits: str) -> bool:
    """Whether a network issues numbers of this length with this prefix."""
    best: tuple[int, frozenset[int]] | None = None
    for prefixes, lengths in _CARD_NETWORKS:
        for prefix in prefixes:
            if digits.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), lengths)
    return best is not None and len(digits) in best[1]


def continues_a_token(text: str, start: int, end: int) -> bool:
    """A match glued by '-' or '.' to more digits on either side: part of a longer number."""
    before = start >= 2 and text[start - 1] in "-." and text[start - 2].isdigit()
    after = end + 1 < len(text) and text[end] in "-." and text[end + 1].isdigit()
    return before or after


class CardNumberRecognizer(CreditCardRecognizer):
    """Presidio's CreditCardRecognizer (Luhn) plus token boundaries and network lengths (module docstring)."""

    def validate_result(self, pattern_text: str) -> bool:
        digits = "".join(c for c in pattern_text if c.isdigit())
        return bool(super().validate_result(pattern_text)) and card_length_fits(digits)

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None, regex_flags: int | None = None
    ) -> list[RecognizerResult]:
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        return [r for r in results if not continues_a_token(text, r.start, r.end)]


class SsnRecognizer(UsSsnRecognizer):
    """Presidio's UsSsnRecognizer plus token boundaries: 978-84-7689 inside an ISBN is no SSN."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None, regex_flags: int | None = None
    ) -> list[RecognizerResult]:
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        return [r for r in results if not continues_a_token(text, r.start, r.end)]
