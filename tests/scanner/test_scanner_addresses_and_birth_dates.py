"""Street addresses and dates of birth through the bundled registry and the default policy: the shapes seven
countries write addresses in, birth dates after lead-ins in six languages; and what must not be found (dates
that are not birth dates, capitalised phrases with a number that are not streets)."""

from __future__ import annotations

from datetime import date

import pytest

from services.scanner.adapters.date_of_birth_recognizers import parse_date
from services.scanner.adapters.detector import Detector
from services.scanner.domain.findings import Span, decide_spans
from services.scanner.domain.policy import Action, Policy


def _found(detector: Detector, policy: Policy, text: str, entity: str) -> list[str]:
    spans = [Span(d.entity, d.start, d.end, d.score) for d in detector.detect(text)]
    return [text[d.span.start : d.span.end] for d in decide_spans(spans, policy, "internal") if d.span.entity == entity]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("ship to 12 Rue de la Paix, 75002 Paris please", "12 Rue de la Paix, 75002 Paris"),
        ("Musterstraße 5, 10115 Berlin", "Musterstraße 5, 10115 Berlin"),
        ("He lived at 221B Baker Street for years.", "221B Baker Street"),
        (
            "Send it to 1600 Pennsylvania Avenue NW, Washington, DC 20500.",
            "1600 Pennsylvania Avenue NW, Washington, DC 20500",
        ),
        ("Office: 350 Fifth Ave Suite 3300, New York, NY 10118", "350 Fifth Ave Suite 3300, New York, NY 10118"),
        ("Kerkstraat 12a, 1017 GC Amsterdam", "Kerkstraat 12a, 1017 GC Amsterdam"),
        ("Il mio indirizzo è Via Roma 12, 00184 Roma (RM).", "Via Roma 12, 00184 Roma (RM)"),
        ("Mi dirección es Calle de Alcalá, 45, 28014 Madrid.", "Calle de Alcalá, 45, 28014 Madrid"),
        ("Anschrift: Hohenzollernring 3, 50672 Köln", "Hohenzollernring 3, 50672 Köln"),
        ("Flat 4, Abbey Road, London, NW8 9AY", "Flat 4, Abbey Road, London, NW8 9AY"),
        ("adresse : 7 bis, boulevard Saint-Michel", "7 bis, boulevard Saint-Michel"),
        ("Billing address: avenue Foch", "avenue Foch"),  # no number: the lead-in word makes it an address
        ("PSC 1234, Box 5678, APO AE 09204", "PSC 1234, Box 5678, APO AE 09204"),
    ],
)
def test_street_addresses(detector: Detector, policy: Policy, text: str, address: str) -> None:
    assert _found(detector, policy, text, "STREET_ADDRESS") == [address]


@pytest.mark.parametrize(
    "text",
    [
        "Check out the Park Avenue collection, item 4006381333931.",
        "Meeting moved to Room 4 on the 2nd floor.",
        "The Spring 2024 release fixes the export.",
        "We ordered 3 Green Tea boxes.",  # lower case it would be a noun anyway; "Tea" is no street type
        "reach the desk at +1 303 974 1536 Each field writer",  # a digit group, not a house number
        "Please send it via email 2 times.",
        "the avenue was closed",  # a street word without a name or number
        "Via Roma is lovely in spring.",  # a street named without a number or lead-in: below the floor
        "Windows 10 Home on the laptop",
    ],
)
def test_phrases_that_are_not_addresses(detector: Detector, policy: Policy, text: str) -> None:
    assert _found(detector, policy, text, "STREET_ADDRESS") == []


@pytest.mark.parametrize(
    ("text", "born"),
    [
        ("DOB 04/07/1986", "04/07/1986"),
        ("I was born on 3 March 1979.", "3 March 1979"),
        ("date of birth: March 3rd, 1979", "March 3rd, 1979"),
        ("Geburtsdatum: 12.03.1985", "12.03.1985"),
        ("Ich bin am 3. März 1979 geboren.", "3. März 1979"),
        ("date de naissance : 12/03/1985", "12/03/1985"),
        ("Je suis née le 3 mars 1979.", "3 mars 1979"),
        ("fecha de nacimiento: 3 de marzo de 1979", "3 de marzo de 1979"),
        ("data di nascita 12/03/1985", "12/03/1985"),
        ("sono nato il 1985-03-12", "1985-03-12"),
        ("geboortedatum 12-03-1985", "12-03-1985"),
        ("Patient (D.O.B. 1961-11-30) was seen today.", "1961-11-30"),
        ('{"name": "X", "dob": "1944-12-09", "plan": "gold"}', "1944-12-09"),  # a JSON key
        ("Date of birth (dd/mm/yyyy): 13/12/1999", "13/12/1999"),  # a format hint
        ("Kunde né(e) le 26/07/1949", "26/07/1949"),
    ],
)
def test_dates_of_birth(detector: Detector, policy: Policy, text: str, born: str) -> None:
    assert _found(detector, policy, text, "DATE_OF_BIRTH") == [born]


@pytest.mark.parametrize(
    "text",
    [
        "order date 04/07/2024",
        "released on 3 March 2021",
        "Your birthday discount is valid until 12/05/2026!",
        "The contract started on 1 April 2019 and renews every year.",
        "Geburtsdatum: 31.02.1985",  # no such day
        "born on 12/03/1850",  # before 1900: not a living customer's birth date
        "Lieferdatum: 12.03.2025",
        "date de livraison : 12/03/2025",
        '{"order_date": "2024-03-02", "ship": "2024-03-04"}',
        "Delivery date (dd/mm/yyyy): 12/03/2025",
    ],
)
def test_dates_that_are_not_birth_dates(detector: Detector, policy: Policy, text: str) -> None:
    assert _found(detector, policy, text, "DATE_OF_BIRTH") == []


def test_numeric_dates_read_day_first_then_month_first() -> None:
    assert parse_date("04/07/1986") == date(1986, 7, 4)
    assert parse_date("12/31/1986") == date(1986, 12, 31)  # only month-first is a real date
    assert parse_date("03.04.85") == date(1985, 4, 3)
    assert parse_date("3 de marzo de 1979") == date(1979, 3, 3)
    assert parse_date("13/13/1986") is None


def test_policy_redacts_both_and_public_data_blocks_them(policy: Policy) -> None:
    for entity in ("STREET_ADDRESS", "DATE_OF_BIRTH"):
        assert policy.is_personal(entity)
        assert policy.decide("internal", entity, 0.85).action == Action.REDACT  # type: ignore[union-attr]
        assert policy.decide("public", entity, 0.85).action == Action.BLOCK_DATASET  # type: ignore[union-attr]
        assert policy.decide("internal", entity, 0.35) is None
