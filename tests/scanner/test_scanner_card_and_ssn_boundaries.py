"""Presidio's card and SSN recognizers with token boundaries and card network lengths (presidio_refinements):
the cards and SSNs people write are still found; the tails of order numbers and ISBNs, and EAN-13 barcodes of
a length no card network issues, are not."""

from __future__ import annotations

import pytest

from services.scanner.adapters.detector import Detector
from services.scanner.adapters.presidio_refinements import card_length_fits, continues_a_token
from services.scanner.domain.findings import Span, decide_spans
from services.scanner.domain.policy import Policy


def _found(detector: Detector, policy: Policy, text: str, entity: str) -> list[str]:
    spans = [Span(d.entity, d.start, d.end, d.score) for d in detector.detect(text)]
    return [text[d.span.start : d.span.end] for d in decide_spans(spans, policy, "internal") if d.span.entity == entity]


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("paid with 4111-1111-1111-1111", "CREDIT_CARD", "4111-1111-1111-1111"),
        ("card 5555 5555 5555 4444 exp 09/28", "CREDIT_CARD", "5555 5555 5555 4444"),
        ("Amex 3782 822463 10005", "CREDIT_CARD", "3782 822463 10005"),
        ("Discover 6011-1111-1111-1117", "CREDIT_CARD", "6011-1111-1111-1117"),
        ("my SSN is 536-22-1234.", "US_SSN", "536-22-1234"),
    ],
)
def test_cards_and_ssns_are_still_found(detector: Detector, policy: Policy, text: str, entity: str, value: str) -> None:
    assert _found(detector, policy, text, entity) == [value]


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("Order no. 556-5403092-1120525 was delivered damaged.", "CREDIT_CARD"),  # the tail of an order number
        ("item 3303366981400 is out of stock again", "CREDIT_CARD"),  # EAN-13 (France): 13 digits after a 3
        ("The book (ISBN 978-84-7689-767-6) never arrived.", "US_SSN"),
        ("ref 12.536-22-1234", "US_SSN"),
    ],
)
def test_parts_of_longer_numbers_and_barcodes_are_not(
    detector: Detector, policy: Policy, text: str, entity: str
) -> None:
    assert _found(detector, policy, text, entity) == []


def test_network_lengths_and_token_boundaries() -> None:
    assert card_length_fits("4111111111111111") and card_length_fits("4222222222222")  # Visa 16 and 13
    assert card_length_fits("378282246310005") and not card_length_fits("3782822463100050")  # Amex is 15
    assert not card_length_fits("5403092112052") and not card_length_fits("9111111111111111")
    assert continues_a_token("556-5403092-1120525", 4, 19) and continues_a_token("978-84-7689-767-6", 0, 11)
    assert not continues_a_token("card 4111-1111-1111-1111.", 5, 24)
