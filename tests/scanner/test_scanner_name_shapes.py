"""Names in the shapes chat logs, CRM exports, forms and call notes give them (name_shape_recognizers), through
the bundled registry and the default policy, without NER: each shape found exactly, and its look-alikes not."""

from __future__ import annotations

import pytest

from services.scanner.adapters.detector import Detector
from services.scanner.domain.findings import Span, decide_spans
from services.scanner.domain.policy import Policy


def persons(detector: Detector, policy: Policy, text: str) -> list[str]:
    spans = [Span(d.entity, d.start, d.end, d.score) for d in detector.detect(text)]
    return sorted(
        text[d.span.start : d.span.end] for d in decide_spans(spans, policy, "internal") if d.span.entity == "PERSON"
    )


@pytest.mark.parametrize(
    ("text", "names"),
    [
        # ChatSpeakerRecognizer
        ("[09:09] Rosa Bravo: cust sent the card again", ["Rosa Bravo"]),
        ("[2004-11-24 14:05] <Tomás Ruiz> build broke", ["Tomás Ruiz"]),
        ("[13:58] Susanne → Antoine: details in DM", ["Antoine", "Susanne"]),
        ("Hugo Gozzi  10:02 AM\nrefund done", ["Hugo Gozzi"]),
        ("Roland Parent (edited) 16:44\nok", ["Roland Parent"]),
        ("Valerio joined the channel.", ["Valerio"]),
        ("-- Ilse Berg has left the channel --", ["Ilse Berg"]),
        ("Ada Moss joined the channel.\nJodi Wills: hi, new here", ["Ada Moss", "Jodi Wills"]),
        # AtMentionRecognizer
        ("bot: New ticket SUP-1 assigned to @Fritz Trub", ["Fritz Trub"]),
        ("<@Alessandra Alighieri> can you check the queue", ["Alessandra Alighieri"]),
        # NameFieldRecognizer
        ("Account holder: Gilbert Roux (verified)", ["Gilbert Roux"]),
        ("Case Owner: Gemma", ["Gemma"]),
        ('{"full_name": "Josué Guijarro", "plan": "pro"}', ["Josué Guijarro"]),
        ("name=Josué Guijarro&email=x", ["Josué Guijarro"]),
        ("Name (optional): Ines Vidal", ["Ines Vidal"]),
        ("Q1 What's your name? Lenn Stettyn", ["Lenn Stettyn"]),
        ("*Your name*\nHortense Goncalves\n", ["Hortense Goncalves"]),
        ("Dynamics | Case 12 | Customer Gemma Ruiz | Origin: Phone", ["Gemma Ruiz"]),
        # NameSignatureRecognizer
        ("Madeleine Roy;ops@corp.local;07 69 52 65 18", ["Madeleine Roy"]),
        ("HR Shared Services\nNazario Torralba\n806 61 65 30", ["Nazario Torralba"]),
        ("> --\n> Ekrem\n> e@reichmann.net", ["Ekrem"]),
        ("adv cust 3-5 wd. cust happy. -Emilio Sforza", ["Emilio Sforza"]),
        ("— Anna Berg", ["Anna Berg"]),
        # NameShorthandRecognizer
        ("cust Sylvia Klemt v. unhappy, wants mgr", ["Sylvia Klemt"]),
        ("cb req'd. spoke w/ Blanca, confirmed addr", ["Blanca"]),
        ("pls loop in Aldo from finance", ["Aldo"]),
        ("3rd party on line (Luca Neri, son), consent given", ["Luca Neri"]),
        ("follow-up task created for Marcelle Girard", ["Marcelle Girard"]),
        ("Thread in #billing | started by Ilse", ["Ilse"]),
        ("Intercom conversation SUP-60511 with Jean", ["Jean"]),
        ("Re: bank details update for Griselda Galilei", ["Griselda Galilei"]),
    ],
)
def test_name_shapes_are_found_exactly(detector: Detector, policy: Policy, text: str, names: list[str]) -> None:
    assert persons(detector, policy, text) == names


@pytest.mark.parametrize(
    "text",
    [
        "[15:30] bot: New ticket SUP-72191 assigned",  # a bot, lower case
        "[09:41] System: maintenance tonight",  # stoplisted
        "meeting at 10:02 AM\nagenda attached",
        "Comment: too slow",  # a form's field, no chat line next to it
        "Captcha: passed\n[10:01] bot: hi",  # a form's field next to a chat line: stoplisted
        "mail me at ops@corp.local or @here",
        "User agent: Mozilla/5.0",  # a product and its version
        "Contact Email: janice@ad.contoso.local",
        "Customer Success | Billing",  # a team
        "Customer Profile",
        "Senior Accountant\n+34 806 39 60 21",  # a job title above a phone number
        "Confidential – Human Resources",
        "the daughter. Medical record no. 33086153",
        "- Check Logs",  # a bullet
        "for Premium support",
    ],
)
def test_name_shape_lookalikes_are_not_names(detector: Detector, policy: Policy, text: str) -> None:
    assert persons(detector, policy, text) == []
