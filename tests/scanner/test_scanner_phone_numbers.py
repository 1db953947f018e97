"""Phone numbers through the bundled registry and the default policy (PhoneNumberRecognizer): national formats
of any region after a lead-in word in six languages, international ones alone, home-region ones alone; and
the digit runs that are not phone numbers (ISBNs, barcodes, versions, dates, order and invoice numbers)."""

from __future__ import annotations

import phonenumbers
import pytest

from services.scanner.adapters.detector import Detector
from services.scanner.adapters.phone_recognizers import PhoneNumberRecognizer
from services.scanner.domain.findings import Span, decide_spans
from services.scanner.domain.policy import Policy


def _phones(detector: Detector, policy: Policy, text: str) -> list[str]:
    spans = [Span(d.entity, d.start, d.end, d.score) for d in detector.detect(text)]
    return [
        text[d.span.start : d.span.end]
        for d in decide_spans(spans, policy, "internal")
        if d.span.entity == "PHONE_NUMBER"
    ]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("call me on 030 12345678 in the afternoon", "030 12345678"),  # Berlin, national
        ("tel: 06 12 34 56 78", "06 12 34 56 78"),  # French mobile
        ("Handy: 0171 2345678", "0171 2345678"),
        ("Sie erreichen mich unter Telefon 089 / 12 34 56 78.", "089 / 12 34 56 78"),
        ("mon portable : 06.12.34.56.78", "06.12.34.56.78"),
        ("mi móvil es 612 34 56 78", "612 34 56 78"),
        ("il mio cellulare è 347 123 4567", "347 123 4567"),
        ("bel me op 06-12345678 na vijf uur", "06-12345678"),
        ("ring me at 020 7946 0958", "020 7946 0958"),
        ("call 0412 345 678 (my Sydney mobile)", "0412 345 678"),  # AU: not a home region, the lead-in says phone
        ("Tel. +81 3-1234-5678", "+81 3-1234-5678"),
        ("+33 6 12 34 56 78 is my number", "+33 6 12 34 56 78"),  # international needs no lead-in
        # An unassigned area code behind a country code is still a phone number (Faker nl_NL writes these).
        ("Bereikbaar via +31(0)94-5827195 of e-mail", "+31(0)94-5827195"),
        # North American print shape with an extension, area code unassigned: still a phone number.
        ("numbers on the ticket:\n(751)572-8623x3573\n", "(751)572-8623x3573"),
        ("Fax 0049 30 1234567", "0049 30 1234567"),
        ("+44 (0)20 7946 0958", "+44 (0)20 7946 0958"),
        ("Best,\nAnna\n(212) 555-0123", "(212) 555-0123"),  # a home region's number alone on a signature line
        ("Saludos,\nJavier\n925 14 90 92", "925 14 90 92"),
    ],
)
def test_phone_numbers_in_national_and_international_format(
    detector: Detector, policy: Policy, text: str, number: str
) -> None:
    assert _phones(detector, policy, text) == [number]


def test_two_numbers_joined_by_a_slash_are_two_findings(detector: Detector, policy: Policy) -> None:
    assert _phones(detector, policy, "Tel 030 1234567 / 0171 2345678") == ["030 1234567", "0171 2345678"]


@pytest.mark.parametrize(
    "text",
    [
        "The book (ISBN 978-3-16-148410-0) never arrived.",
        "ISBN 0-306-40615-2",
        "item 4006381333931 is out of stock again",  # EAN-13
        "SKU: 4006381333931, qty 3",
        "We are still on version 16.4.19724.4664 of the desktop app.",
        "after the update to 11.9.13771.3651 the export breaks",
        "the outage started on 05.10.1971",
        "order date 04/07/2024",
        "Your order 612345678 has shipped.",
        "call me about order 612345678",  # the lead-in is for the order, not a number
        "we paid invoice no. 20241234567 in full",
        "Order no. ORD-2024-612345 was delivered damaged.",
        "see also #61234567",
        "postcode 75002, room 1234",
        "(11) 96123-4567",  # a São Paulo mobile without a lead-in: Brazil is not a home region
        "call me on 12345",  # too short to be a subscriber number
        # a date then a time: no "phone" made of a date and the hour
        "CALL NOTE 17.02.1984 10:22 agent Luna",
        "Outage window 31/10/1984 02:00-04:00 UTC",
        "Sick leave certificate received (06/01/1985 to 21.12.2024)",
        "line 1: 4006381333931 x 4 @ $4.13",  # a barcode and a count, not an extension
        # reference numbers of business documents
        "Dispatch note 20216673508",
        "credit note 20211155865 for $69.44",
        "Amount due: $7,515.20 (inv 20254344618)",
        "please cancel subscription 20199538357.",
        # a German-valid 11-digit run without the trunk prefix 0 every German number is printed with
        "20216673508 was charged twice",
        "phone never rang. login from 167.180.237.189 at noon",  # an IPv4 address, even after a lead-in
    ],
)
def test_digit_runs_that_are_not_phone_numbers(detector: Detector, policy: Policy, text: str) -> None:
    assert _phones(detector, policy, text) == []


def test_a_lead_in_raises_the_score_as_presidio_context_would() -> None:
    recognizer = PhoneNumberRecognizer()
    [alone] = recognizer.analyze("+33 6 12 34 56 78", [])
    [with_lead_in] = recognizer.analyze("téléphone : +33 6 12 34 56 78", [])
    assert (alone.score, with_lead_in.score) == (PhoneNumberRecognizer.SCORE, PhoneNumberRecognizer.CONTEXT_SCORE)


def test_home_regions_are_configurable_and_checked() -> None:
    brazilian = PhoneNumberRecognizer(home_regions=["BR"])
    assert [(r.start, r.end) for r in brazilian.analyze("(11) 96123-4567", [])] == [(0, 15)]
    assert brazilian.analyze("020 7946 0958", []) == []  # London is no longer home
    with pytest.raises(ValueError, match=r"home_regions \['UK'\] are not regions phonenumbers knows"):
        PhoneNumberRecognizer(home_regions=["UK"])


def test_every_region_phonenumbers_knows_is_found_after_a_lead_in() -> None:
    """The example number of every region, printed nationally after 'phone:'."""
    recognizer = PhoneNumberRecognizer()
    missed = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        example = phonenumbers.example_number(region)
        if example is None:
            continue
        national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
        text = f"phone: {national}"
        if len([c for c in national if c.isdigit()]) < 7:
            continue  # short subscriber numbers (small islands) are below the recognizer's floor on purpose
        if [(r.start, r.end) for r in recognizer.analyze(text, [])] != [(7, len(text))]:
            missed.append((region, national))
    assert not missed, missed
