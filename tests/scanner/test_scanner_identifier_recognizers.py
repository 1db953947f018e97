"""Mail, IBAN and EU national-id recognizers through the bundled registry and the default policy (the floors a
scan applies): true positives in the phrasings tickets use, and the look-alikes they must leave alone."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from faker import Faker

from services.scanner.adapters.detector import Detector, RegistryEntry
from services.scanner.adapters.recognizers import luhn_valid
from services.scanner.domain.findings import Span, decide_spans
from services.scanner.domain.identifiers import IBAN_BBAN_FORMATS
from services.scanner.domain.policy import Action, Operator, Policy
from tests.scanner.identifier_samples import (
    change_one_digit,
    faker_values,
    generated_de_tax_id,
    generated_iban,
    generated_uk_nino,
    grouped,
)

NATIONAL_IDS = ("UK_NINO", "DE_TAX_ID", "FR_NIR", "ES_NIF", "ES_NIE", "IT_FISCAL_CODE", "NL_BSN")
NEW_ENTITIES = {"EMAIL_ADDRESS", "IBAN_CODE", *NATIONAL_IDS}
PER_ENTITY = 60  # values per entity in the true-positive tests


def found(detector: Detector, policy: Policy, text: str) -> set[tuple[str, str]]:
    """(entity, matched text) the scan keeps: policy floors applied, overlaps resolved."""
    spans = [Span(d.entity, d.start, d.end, d.score) for d in detector.detect(text)]
    return {(d.span.entity, text[d.span.start : d.span.end]) for d in decide_spans(spans, policy, "internal")}


# ---------------------------------------------------------------- values in their written forms


def _nir_printed(value: str) -> str:
    """1 72 02 75 056 121 26, or 1 72 02 971 05 121 26 for an overseas department."""
    place = f"{value[5:8]} {value[8:10]}" if value[5:7] in ("97", "98") else f"{value[5:7]} {value[7:10]}"
    return f"{value[0]} {value[1:3]} {value[3:5]} {place} {value[10:13]} {value[13:]}"


def _values(entity: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    n = PER_ENTITY
    if entity == "NL_BSN":
        return [
            v if i % 2 else f"{v[:4]}.{v[4:6]}.{v[6:]}" for i, v in enumerate(faker_values("nl_NL", "ssn", seed, n))
        ]
    if entity == "DE_TAX_ID":
        values = [generated_de_tax_id(rng) for _ in range(n)]
        return [v if i % 2 else f"{v[:2]} {v[2:5]} {v[5:8]} {v[8:]}" for i, v in enumerate(values)]
    if entity == "FR_NIR":
        return [v if i % 2 else _nir_printed(v) for i, v in enumerate(faker_values("fr_FR", "ssn", seed, n))]
    if entity == "ES_NIF":
        forms: list[Callable[[str], str]] = [
            lambda v: v,
            lambda v: f"{v[:8]}-{v[8]}",
            lambda v: f"{v[:2]}.{v[2:5]}.{v[5:8]}-{v[8]}",
        ]
        return [forms[i % 3](v) for i, v in enumerate(faker_values("es_ES", "nif", seed, n))]
    if entity == "ES_NIE":
        return [v if i % 2 else f"{v[0]}-{v[1:8]}-{v[8]}" for i, v in enumerate(faker_values("es_ES", "nie", seed, n))]
    if entity == "IT_FISCAL_CODE":
        return faker_values("it_IT", "ssn", seed, n)
    if entity == "UK_NINO":
        values = [generated_uk_nino(rng) for _ in range(n)]
        return [v if i % 2 else f"{v[:2]} {v[2:4]} {v[4:6]} {v[6:8]} {v[8]}" for i, v in enumerate(values)]
    if entity == "IBAN_CODE":
        values = [generated_iban(country, rng) for country in sorted(IBAN_BBAN_FORMATS)]
        return [v if i % 2 else grouped(v) for i, v in enumerate(values)]
    raise AssertionError(entity)


CONTEXT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "NL_BSN": ("BSN: {}", "Mijn burgerservicenummer is {}.", "citizen service number {} on file"),
    "DE_TAX_ID": ("Steuer-ID: {}", "meine Steueridentifikationsnummer lautet {}", "IdNr. {} laut Bescheid"),
    "FR_NIR": ("numéro de sécurité sociale : {}", "N° INSEE {}", "my French social security number is {}"),
    "ES_NIF": ("DNI: {}", "mi DNI es {}, gracias", "NIF {} (persona física)", "tax id {} for invoice 4711"),
    "ES_NIE": ("NIE: {}", "número de identidad de extranjero {}", "my NIE is {}."),
    "IT_FISCAL_CODE": ("codice fiscale: {}", "C.F. {}", "my fiscal code is {}"),
    "UK_NINO": ("National Insurance number {}", "NI number: {}", "my NINO is {}."),
    "IBAN_CODE": ("IBAN {}", "please transfer it to {} by Friday", "Kontonummer {}"),
}
BARE_TEMPLATES = ("ref {} attached", "see {} below", "{}")
# Strong alone: structure plus check (codice fiscale, NIR, IBAN) or the printed NINO. The rest need context.
STRONG_ALONE = {"IT_FISCAL_CODE", "FR_NIR", "IBAN_CODE"}


@pytest.mark.parametrize("entity", [*NATIONAL_IDS, "IBAN_CODE"])
def test_identifiers_with_context_are_found_exactly(detector: Detector, policy: Policy, entity: str) -> None:
    rng = random.Random(entity)
    values = _values(entity, seed=21)
    missed = [
        v for v in values if (entity, v) not in found(detector, policy, rng.choice(CONTEXT_TEMPLATES[entity]).format(v))
    ]
    assert missed == [], f"{entity}: {len(missed)}/{len(values)} missed, e.g. {missed[:3]}"


@pytest.mark.parametrize("entity", [*NATIONAL_IDS, "IBAN_CODE"])
def test_bare_identifiers_are_found_only_when_strong_alone(
    detector: Detector, policy: Policy, registry: list[RegistryEntry], entity: str
) -> None:
    rng = random.Random(entity)
    values = _values(entity, seed=22)
    texts = [(v, rng.choice(BARE_TEMPLATES).format(v)) for v in values]
    kept = [v for v, text in texts if (entity, v) in found(detector, policy, text)]
    if entity == "FR_NIR":
        # A bare NIR that also passes Luhn reads as a 15-digit card (1.0) and is redacted as one.
        as_card = [v for v, text in texts if ("CREDIT_CARD", v) in found(detector, policy, text)]
        assert as_card and all(luhn_valid(v.replace(" ", "")) for v in as_card)
        assert sorted(kept + as_card) == sorted(values)
    elif entity in STRONG_ALONE:
        assert kept == values
    elif entity == "UK_NINO":
        assert kept == [v for v in values if " " in v]  # the printed form AB 12 34 56 C, not AB123456C
    else:
        assert kept == []
        # ...but the recognizer still reports them, below the floor, for a policy that wants bare numbers
        recognizer = next(e.recognizer for e in registry if entity in e.entities)
        scores = {r.score for _, text in texts for r in recognizer.analyze(text, [entity], None)}
        assert scores == {0.4}


@pytest.mark.parametrize("entity", [*NATIONAL_IDS, "IBAN_CODE"])
def test_a_changed_digit_is_never_reported_even_in_context(detector: Detector, policy: Policy, entity: str) -> None:
    rng = random.Random(entity)
    if entity == "IT_FISCAL_CODE":  # change the check letter: digits there may be omocodia letters
        wrong = [v[:15] + ("A" if v[15] != "A" else "B") for v in _values(entity, seed=23)]
    elif entity == "UK_NINO":  # no check digit: break the allocation rules instead
        wrong = [rng.choice(["QQ", "ZZ", "GB", "DA", "AO"]) + v[2:] for v in _values(entity, seed=23)]
    else:
        wrong = [change_one_digit(v, rng) for v in _values(entity, seed=23)]
    texts = [rng.choice(CONTEXT_TEMPLATES[entity]).format(v) for v in wrong]
    assert [t for t in texts if any(e == entity for e, _ in found(detector, policy, t))] == []


# ---------------------------------------------------------------- look-alikes

DECOY_TEXTS = (
    "Order 123456782 shipped on 2024-03-15.",  # BSN-valid digits, but an order number without BSN context
    "order #36574261809 was refunded",  # Steuer-IdNr-valid digits after '#'
    "Invoice INV-2024-54362315K is overdue",  # DNI-valid, glued into an invoice number
    "invoice no. 2024/000123 and 2024/000124",
    "ISBN 978-3-16-148410-0",
    "ISBN 0-306-40615-2, ISBN-13 9780306406157, ISBN 080442957X",
    "SKU AB123456C is back in stock",  # NINO-shaped SKU: no context
    "SKU: 54362315K, qty 3",  # DNI-valid SKU: no context
    "part X2482300W ships Monday",  # NIE-valid part number: no context
    "upgrade to v1.2.3 then 2.95.10-rc1",
    "build 1.123456782 failed",
    "call 0612345678 or +31 6 1234 5678 or 030-1234567",
    "Tel. +49 30 901820 / 0171 2345678",
    "tracking 295109912611199 (DHL)",  # NIR-shaped, key wrong
    "BSN 123456789 klopt niet",  # context, but fails the 11-proof
    "DNI 54362315Z",  # context, wrong letter
    "NI number QQ 12 34 56 C",  # HMRC's placeholder prefix
    "codice fiscale RCCMNL83S18D969X",  # wrong check letter
    "IBAN DE89 3704 0044 0532 0130 01",  # one digit off
    "BSNL ticket 123456782",  # 'BSNL' is an Indian telco, not 'BSN'
    "Ik weet het niet, X2482300W",  # Dutch 'niet' is not 'NIE'
    "transaction 1234567890123456789 settled",
    "see icon@2x.png and logo@3x.webp, sprite@1.5x.jpg",
    "npm install lodash@4.17.21 @types/node@18.0.0 react@next",
    "ssh user@localhost, then ping admin@server",
    "scores = q@k.transpose(-2, -1) / d",
    "thanks @maria.silva for the review",
    "pip install pkg@1.0.tgz",
    "a@b.c is not an address",
)


def test_decoy_texts_produce_no_detection_of_these_types(detector: Detector, policy: Policy) -> None:
    flagged = {
        text: hits
        for text in DECOY_TEXTS
        if (hits := {h for h in found(detector, policy, text) if h[0] in NEW_ENTITIES})
    }
    assert flagged == {}


def _generated_decoys(seed: int) -> list[str]:
    """Order, invoice, ISBN, SKU, version and phone-number look-alikes from Faker, several locales."""
    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL"])
    fake.seed_instance(seed)
    rng = random.Random(seed)
    makers: list[Callable[[], str]] = [
        lambda: f"order {fake.numerify('#########')} confirmed",
        lambda: f"order no. {fake.numerify('###########')}",
        lambda: f"Invoice {fake.bothify('INV-####-######')} attached",
        lambda: f"invoice {fake.numerify('##########')}/{rng.randint(1, 99)}",
        lambda: f"ISBN {fake['en_US'].isbn13()}",
        lambda: f"ISBN {fake['en_US'].isbn10()}",
        lambda: f"ISBN {fake['en_US'].isbn13(separator='')}",
        lambda: f"SKU {fake.bothify('??######?').upper()}",
        lambda: f"SKU {fake.bothify('########?').upper()}",
        lambda: f"part {fake.bothify('?#######?').upper()}",
        lambda: f"version {rng.randint(0, 30)}.{rng.randint(0, 99)}.{rng.randint(0, 999)}",
        lambda: f"call {fake[rng.choice(['de_DE', 'fr_FR', 'es_ES', 'it_IT', 'nl_NL', 'en_GB'])].phone_number()}",
        lambda: f"serial {fake.numerify('###############')}",
        lambda: f"account ref {fake.numerify('#########')}",
    ]
    return [rng.choice(makers)() for _ in range(600)]


def test_generated_lookalikes_are_not_reported(detector: Detector, policy: Policy) -> None:
    decoys = _generated_decoys(seed=31)
    flagged = [(t, hits) for t in decoys if (hits := {h for h in found(detector, policy, t) if h[0] in NEW_ENTITIES})]
    assert flagged == []


# ---------------------------------------------------------------- mail addresses

INTERNAL_ADDRESSES = (
    "jonas.silva@corp.local",
    "maria@acme.internal",
    "ops@hq.lan",
    "first.last+billing@mail.example.co.uk",
    "o'neil@dept.intranet",
    "helpdesk-2@eu-west.corp",
    "jürgen.müller@bücher.de",
    "user_01@163.com",
    "zhang.wei@sales.cn",
    "иван@почта.рф",
)
MAIL_TEMPLATES = (
    "write to {}",
    "Email: <{}>",
    "mailto:{}",
    "cc ({}) please",
    "reach {}.",
    '"{}"',
    "请联系{}谢谢",
    "{}。",
)


def _faker_addresses(seed: int) -> list[str]:
    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL"])
    fake.seed_instance(seed)
    rng = random.Random(seed)
    return [getattr(fake, rng.choice(["email", "company_email", "free_email", "ascii_email"]))() for _ in range(120)]


def test_mail_addresses_on_any_domain_are_found_exactly(detector: Detector, policy: Policy) -> None:
    rng = random.Random(41)
    addresses = [*INTERNAL_ADDRESSES, *_faker_addresses(41)]
    missed = [
        a
        for a in addresses
        if ("EMAIL_ADDRESS", a) not in found(detector, policy, rng.choice(MAIL_TEMPLATES).format(a))
    ]
    assert missed == []


def test_a_token_in_a_urls_credentials_is_a_secret_not_a_mail_address(detector: Detector, policy: Policy) -> None:
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    text = f"git clone https://{token}@github.com/acme/billing.git and mail ops@acme.internal"
    assert found(detector, policy, text) == {("GITHUB_TOKEN", token), ("EMAIL_ADDRESS", "ops@acme.internal")}


def test_mail_recognizer_never_asks_tldextract(
    detector: Detector, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tldextract

    def offline_only(*args: object, **kwargs: object) -> None:
        raise AssertionError("tldextract called: it downloads the public-suffix list")

    monkeypatch.setattr(tldextract.TLDExtract, "__call__", offline_only)
    monkeypatch.setattr(tldextract, "extract", offline_only)
    text = "mail jonas.silva@corp.local, maria@acme.internal or ops@hq.lan"
    assert {a for e, a in found(detector, policy, text) if e == "EMAIL_ADDRESS"} == {
        "jonas.silva@corp.local",
        "maria@acme.internal",
        "ops@hq.lan",
    }


# ---------------------------------------------------------------- spans and policy


def test_a_nir_that_also_passes_luhn_is_a_nir_when_the_text_says_so(detector: Detector, policy: Policy) -> None:
    nirs = [v for v in faker_values("fr_FR", "ssn", 51, 200) if v.isdigit() and luhn_valid(v)]
    assert len(nirs) >= 10
    assert all(found(detector, policy, f"N° de sécurité sociale {v}") == {("FR_NIR", v)} for v in nirs)


def test_iban_takes_exactly_its_countrys_length(detector: Detector, policy: Policy) -> None:
    text = "IBAN DE89 3704 0044 0532 0130 00 12 items, BIC COBADEFFXXX; also GB29NWBK60161331926819 NL91ABNA0417164300"
    assert {a for e, a in found(detector, policy, text) if e == "IBAN_CODE"} == {
        "DE89 3704 0044 0532 0130 00",
        "GB29NWBK60161331926819",
        "NL91ABNA0417164300",
    }
    assert not found(detector, policy, "IBAN DE89370400440532013000X1")  # glued to more characters


def test_default_policy_redacts_national_ids_and_public_data_blocks_them(policy: Policy) -> None:
    for entity in NATIONAL_IDS:
        internal = policy.decide("internal", entity, 0.85)
        assert internal is not None and internal.action == Action.REDACT and internal.operator == Operator.REPLACE
        public = policy.decide("public", entity, 0.85)
        assert public is not None and public.action == Action.BLOCK_DATASET
        assert policy.decide("internal", entity, 0.4) is None  # bare weak numbers stay below the floor
