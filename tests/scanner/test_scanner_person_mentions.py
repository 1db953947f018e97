"""Person names without NER in the mention classes added after the Faker corpus showed them missing: field
labels ("Name:", "Reporter:", "From:"), a name before a verb of saying, "<participle> ... by", handing over
and hearsay ("passed this on to", "according to"), and account administration ("add ... as"). The phrasings
here are not the corpus templates: the class is tested, not the sample. Decoys use the same triggers with
things that are not people."""

from __future__ import annotations

import pytest

from services.scanner.adapters.detector import Detector
from services.scanner.adapters.name_recognizers import plausible_person_span
from services.scanner.domain.findings import Span, decide_spans
from services.scanner.domain.policy import Policy


def _names(detector: Detector, policy: Policy, text: str) -> list[str]:
    spans = [Span(d.entity, d.start, d.end, d.score) for d in detector.detect(text)]
    return [
        text[d.span.start : d.span.end] for d in decide_spans(spans, policy, "internal") if d.span.entity == "PERSON"
    ]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Requester: Lena Hoffmann\nPriority: high", ["Lena Hoffmann"]),
        ("Contact person: Dr. Aurélie Marchand", ["Aurélie Marchand"]),
        ("Nachname: Schröder", ["Schröder"]),
        ("Nombre: José Luis Ortega", ["José Luis Ortega"]),
        ("From: Pieter de Vries <pieter@example.nl>", ["Pieter de Vries"]),
        ("Afzender: Sanne Bakker", ["Sanne Bakker"]),
        ("Giulia Ferri mentioned that the VPN drops every hour.", ["Giulia Ferri"]),
        ("ok so Tomasz confirmed it, closing.", []),  # no clause start before the name: not claimed
        ("ok so, Tomasz confirmed it, closing.", ["Tomasz"]),
        ("Laut Herrn Becker ist die Rechnung bezahlt.", ["Becker"]),
        ("Selon Camille Roux, le colis est parti.", ["Camille Roux"]),
        ("Jan Jansen zei dat de storing voorbij is.", ["Jan Jansen"]),
        ("The refund was approved last Friday by Martina Colombo.", ["Martina Colombo"]),
        ("Ticket closed by Ahmed Benali - duplicate.", ["Ahmed Benali"]),
        ("I handed this over to Sofía Navarro in legal.", ["Sofía Navarro"]),
        ("Please invite Henrik Larsen to the workspace.", ["Henrik Larsen"]),
        ("Can you remove Olga Petrova from the billing group?", ["Olga Petrova"]),
        ("Regards,\nMartin Luther King Jr.", ["Martin Luther King Jr"]),
        ("Andrea Koch II said hello.", ["Andrea Koch II"]),
        ("Cheers,\nAmanda May", ["Amanda May"]),  # a month as a surname
        ("Thanks, Catherine Hess, see you.", ["Catherine Hess"]),  # Hess is not the possessive of "he"
        ("Regards,\nApril Jones", ["April Jones"]),  # April and June are first names
    ],
)
def test_names_in_the_added_mention_classes(detector: Detector, policy: Policy, text: str, names: list[str]) -> None:
    assert _names(detector, policy, text) == names


@pytest.mark.parametrize(
    "text",
    [
        "Name: Premium plan",
        "Customer: hello?",
        "Reporter: the billing team",
        "From: Customer Service <service@example.com>",
        "Support said the fix is live.",
        "Everyone said it works now.",
        "The release was approved by Legal.",
        "Escalated to tier 2 by the system.",
        "Shipped by Monday at the latest.",
        "Please add Support as a collaborator.",
        "Please add the admin role to my account.",
        "According to the logs, the job failed.",
        "Passed this on to the finance team.",
        "Thanks,\nStatus: waiting for customer.",  # a field label after a sign-off
        "Cheers,\nMay the force be with you",
        "From North Carolina with love.",
    ],
)
def test_the_same_triggers_before_things_that_are_not_people(detector: Detector, policy: Policy, text: str) -> None:
    assert _names(detector, policy, text) == []


@pytest.mark.parametrize(
    ("text", "span", "plausible"),
    [
        ("I spoke with Ingrid Moreau yesterday.", "Ingrid Moreau", True),
        ("the refund, said Jonas, is on its way", "Jonas", True),  # one word, mid-sentence
        ("Regards,\nPieter van der Berg", "Pieter van der Berg", True),
        ("JOHN SMITH signed the form", "JOHN SMITH", True),  # all capitals throughout: a form field
        ("Cheers,\nAnna", "Cheers", False),  # a sign-off
        ("Callback requested: 0512 660 944", "Callback", False),  # a lone capital at a line start
        ("Thanks,\nCustomer Success | kim@example.com", "Customer Success", False),  # stoplisted
        ("Mijn BSN is 791302866.", "Mijn BSN", False),  # an acronym among ordinary words
        ("Il mio codice fiscale è X", "Il mio", False),  # a lower-case word
        ("see also SUP-39507", "SUP-39507", False),  # digits
        ("número de NIE: X1234567L", "número de NIE", False),
    ],
)
def test_ner_person_spans_are_checked_for_the_shape_of_a_name(text: str, span: str, plausible: bool) -> None:
    start = text.index(span)
    assert plausible_person_span(text, start, start + len(span)) is plausible
