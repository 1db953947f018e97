"""An evaluation corpus the recognizers were not written against: Faker values of seven locales inside
ticket, e-mail and chat templates (faker_corpus_templates.yaml), among look-alike decoys.

Kept apart from the scanner on purpose: nothing here imports services.scanner, so the corpus cannot be bent
to what the recognizers happen to accept. Each record carries its gold spans (entity, start, end) and its
decoy spans (kind, start, end); a detection overlapping a decoy is a false positive by construction.
Scoring is in faker_corpus_scoring.py."""

from __future__ import annotations

import base64
import json
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import phonenumbers
import yaml
from faker import Faker

from bench.support.detector_benchmark import Planted

TEMPLATES_PATH = Path(__file__).with_name("faker_corpus_templates.yaml")
LOCALES: tuple[str, ...] = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")
REGION = {"en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "es_ES": "ES", "it_IT": "IT", "nl_NL": "NL"}
# How each locale writes a date in digits (strftime patterns); ISO 8601 everywhere as well.
NUMERIC_DATES: dict[str, tuple[str, ...]] = {
    "en_US": ("%m/%d/%Y", "%Y-%m-%d"),
    "en_GB": ("%d/%m/%Y", "%Y-%m-%d"),
    "de_DE": ("%d.%m.%Y", "%Y-%m-%d"),
    "fr_FR": ("%d/%m/%Y", "%Y-%m-%d"),
    "es_ES": ("%d/%m/%Y", "%Y-%m-%d"),
    "it_IT": ("%d/%m/%Y", "%Y-%m-%d"),
    "nl_NL": ("%d-%m-%Y", "%Y-%m-%d"),
}
# National identifiers only where Faker has a provider that produces the real format (with its checksum).
NATIONAL_IDS: dict[str, tuple[str, ...]] = {
    "en_US": ("US_SSN",),
    "nl_NL": ("NL_BSN",),
    "it_IT": ("IT_FISCAL_CODE",),
    "es_ES": ("ES_NIF", "ES_NIE"),
    "fr_FR": ("FR_NIR",),
}
COMMON_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "PERSON",
    "STREET_ADDRESS",
    "DATE_OF_BIRTH",
    "AWS_ACCESS_KEY",
    "GITHUB_TOKEN",
    "API_KEY",
    "JWT",
)
ENTITIES: tuple[str, ...] = COMMON_ENTITIES + tuple(e for ids in NATIONAL_IDS.values() for e in ids)
DECOYS: tuple[str, ...] = ("ORDER_NUMBER", "VERSION", "ISBN", "SKU", "INVOICE_NUMBER", "TICKET_REF", "AMOUNT", "DATE")
INTERNAL_DOMAINS = ("corp.local", "acme.internal", "hq.lan", "intra.example-corp.de", "ad.contoso.local")
SLOT = re.compile(r"\{([A-Z_]+)\}")
ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class DecoySpan:
    kind: str
    start: int
    end: int


@dataclass(slots=True)
class CorpusRecord:
    text: str
    kind: str  # email | ticket | chat
    locale: str
    gold: list[Planted] = field(default_factory=list)
    decoys: list[DecoySpan] = field(default_factory=list)

    @property
    def planted(self) -> list[Planted]:
        """The name detector_benchmark.score reads the gold spans under."""
        return self.gold


def load_templates(path: Path = TEMPLATES_PATH) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("version"), int):
        raise ValueError(f"{path}: expected a mapping with an integer 'version'")
    known = set(ENTITIES) | set(DECOYS)
    texts = [t for k in data["kinds"].values() for part in ("openings", "closings") for t in k[part]]
    texts += [t for lines in data["body"].values() for t in lines]
    for locale, by_entity in (data.get("native") or {}).items():
        if locale not in LOCALES:
            raise ValueError(f"{path}: native lines for unknown locale {locale!r}; expected one of {list(LOCALES)}")
        texts += [t for lines in by_entity.values() for t in lines]
    for text in texts:
        unknown = set(SLOT.findall(text)) - known
        if unknown:
            raise ValueError(f"{path}: template {text!r} uses unknown slots {sorted(unknown)}")
    # generate_corpus draws a body line for every entity type and a decoy and filler line: a set that lacks
    # one fails here with its name, not with a KeyError halfway through a corpus.
    missing = [key for key in (*ENTITIES, "DECOY", "FILLER") if not data["body"].get(key)]
    if missing:
        raise ValueError(f"{path}: no body lines for {missing}")
    for kind, frame in data["kinds"].items():
        if not frame.get("openings") or not frame.get("closings"):
            raise ValueError(f"{path}: kind {kind!r} needs openings and closings")
    return data


class _Values:
    """One value generator per slot; every draw comes from the seeded rng or the seeded Faker instances."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fakers = {locale: Faker(locale) for locale in LOCALES}
        for i, fake in enumerate(self.fakers.values()):
            fake.seed_instance(seed * 31 + i)
        self.locale = LOCALES[0]

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def draw(self, slot: str, locale: str) -> str:
        method: Callable[[Faker], str] = getattr(self, slot.lower())
        self.locale = locale  # the phone generator needs the region, Faker does not expose it per instance
        return method(self.fakers[locale])

    # ---------------------------------------------------------------- personal data
    def person(self, fake: Faker) -> str:
        return fake.first_name() if self.rng.random() < 0.3 else f"{fake.first_name()} {fake.last_name()}"

    def email_address(self, fake: Faker) -> str:
        style = self.rng.randrange(4)
        if style == 0:
            return fake.free_email()
        if style == 1:
            return fake.company_email()
        local = self.rng.choice([fake.user_name(), f"{fake.user_name()}.{self.rng.randint(1, 99)}", "ops", "it-help"])
        return f"{local}@{self.rng.choice(INTERNAL_DOMAINS)}"

    def phone_number(self, fake: Faker) -> str:
        """Faker's own locale formats when phonenumbers calls them valid for the region, else the same number
        re-printed by phonenumbers in national or international format (Faker emits some invalid ones)."""
        region = REGION[self.locale]
        for _ in range(200):
            raw = fake.phone_number()
            if "x" in raw:  # extensions are not part of the number a recognizer is expected to span
                continue
            try:
                parsed = phonenumbers.parse(raw, region)
            except phonenumbers.NumberParseException:
                continue
            if not phonenumbers.is_valid_number(parsed):
                continue
            style = self.rng.randrange(3)
            if style == 0:
                return raw
            fmt = (
                phonenumbers.PhoneNumberFormat.NATIONAL if style == 1 else phonenumbers.PhoneNumberFormat.INTERNATIONAL
            )
            return phonenumbers.format_number(parsed, fmt)
        raise RuntimeError(f"no valid {region} phone number from Faker in 200 draws")

    def street_address(self, fake: Faker) -> str:
        """Faker's postal address of the locale on one line (as typed into a ticket or chat), or its street
        line alone. Faker's es_ES street lines end in a space; a typed address does not."""
        if self.rng.random() < 0.7:
            return ", ".join(part.strip() for part in fake.address().split("\n"))
        return fake.street_address().strip().replace("\n", ", ")

    def date_of_birth(self, fake: Faker) -> str:
        """Faker's date of birth, written the way the locale writes dates: numeric, or with the month's name."""
        born = fake.date_of_birth(minimum_age=18, maximum_age=90)
        numeric = NUMERIC_DATES[self.locale]
        if self.rng.random() < 0.6:
            return born.strftime(self.rng.choice(numeric))
        return self._long_date(fake, born.day, born.month, born.year)

    def _long_date(self, fake: Faker, day: int, month: int, year: int) -> str:
        names = getattr(fake.provider("faker.providers.date_time"), "MONTH_NAMES", None)
        name = names[f"{month:02d}"] if names else date(2000, month, 1).strftime("%B")
        if self.locale == "en_US":
            return f"{name} {day}, {year}"
        if self.locale == "es_ES":
            return f"{day} de {name.lower()} de {year}"
        if self.locale == "de_DE":
            return f"{day}. {name} {year}"
        return f"{day} {name if self.locale in ('en_GB', 'nl_NL') else name.lower()} {year}"

    def credit_card(self, fake: Faker) -> str:
        number = fake.credit_card_number(card_type=self.rng.choice(["visa16", "mastercard", "amex", "discover"]))
        style = self.rng.randrange(3)
        if style == 0:
            return number
        groups = (4, 6, 5) if len(number) == 15 else (4, 4, 4, 4)
        parts, i = [], 0
        for g in groups:
            parts.append(number[i : i + g])
            i += g
        return (" " if style == 1 else "-").join(parts)

    def iban_code(self, fake: Faker) -> str:
        value = fake.iban()
        return " ".join(value[i : i + 4] for i in range(0, len(value), 4)) if self.rng.random() < 0.5 else value

    def us_ssn(self, fake: Faker) -> str:
        return fake.ssn()

    def nl_bsn(self, fake: Faker) -> str:
        return fake.ssn()

    def it_fiscal_code(self, fake: Faker) -> str:
        return fake.ssn()

    def es_nif(self, fake: Faker) -> str:
        return fake.nif()

    def es_nie(self, fake: Faker) -> str:
        return fake.nie()

    def fr_nir(self, fake: Faker) -> str:
        value = fake.ssn()
        if self.rng.random() < 0.4:  # printed on the carte Vitale as 1 84 12 76 451 089 46
            cuts = (1, 3, 5, 7, 10, 13)
            value = " ".join(value[a:b] for a, b in zip((0, *cuts), (*cuts, len(value)), strict=True))
        return value

    # ---------------------------------------------------------------- secrets (synthesised, never real)
    def aws_access_key(self, fake: Faker) -> str:
        return self.rng.choice(["AKIA", "ASIA"]) + self.chars(string.ascii_uppercase + "234567", 16)

    def github_token(self, fake: Faker) -> str:
        if self.rng.random() < 0.75:
            return self.rng.choice(["ghp_", "gho_", "ghu_", "ghs_"]) + self.chars(ALNUM, 36)
        return f"github_pat_{self.chars(ALNUM, 22)}_{self.chars(ALNUM, 59)}"

    def api_key(self, fake: Faker) -> str:
        """Stripe-shaped keys: secret and restricted, live and test."""
        return f"{self.rng.choice(['sk', 'rk'])}_{self.rng.choice(['live', 'test'])}_{self.chars(ALNUM, 24)}"

    def jwt(self, fake: Faker) -> str:
        def b64(obj: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

        header = b64({"alg": self.rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"})
        body = b64({"sub": fake.uuid4(), "email": fake.email(), "exp": self.rng.randint(1_700_000_000, 1_900_000_000)})
        return f"{header}.{body}.{self.chars(ALNUM + '-_', 43)}"

    # ---------------------------------------------------------------- decoys (must not be detected)
    def order_number(self, fake: Faker) -> str:
        return self.rng.choice(
            [
                f"#{self.rng.randint(100000, 99999999)}",
                f"ORD-{self.rng.randint(2019, 2026)}-{self.rng.randint(0, 999999):06d}",
                "-".join(str(self.rng.randint(10 ** (d - 1), 10**d - 1)) for d in (3, 7, 7)),  # marketplace style
            ]
        )

    def version(self, fake: Faker) -> str:
        return self.rng.choice(
            [
                f"v{self.rng.randint(1, 12)}.{self.rng.randint(0, 30)}.{self.rng.randint(0, 20)}",
                ".".join(str(self.rng.randint(lo, hi)) for lo, hi in ((10, 24), (0, 9), (10000, 22999), (100, 4999))),
                ".".join(str(self.rng.randint(0, 9)) for _ in range(3)) + f"-rc{self.rng.randint(1, 4)}",
            ]
        )

    def isbn(self, fake: Faker) -> str:
        return fake.isbn13() if self.rng.random() < 0.7 else fake.isbn10()

    def sku(self, fake: Faker) -> str:
        return self.rng.choice(
            [
                "-".join(
                    (
                        self.chars(string.ascii_uppercase, 2),
                        str(self.rng.randint(100, 9999)),
                        self.chars(string.ascii_uppercase, 3),
                    )
                ),
                f"SKU{self.rng.randint(10**7, 10**9)}",
                fake.ean13(),
            ]
        )

    def invoice_number(self, fake: Faker) -> str:
        return self.rng.choice(
            [
                f"INV-{self.rng.randint(2019, 2026)}-{self.rng.randint(0, 99999):05d}",
                f"RE{self.rng.randint(10**8, 10**10)}",
                f"{self.rng.randint(2019, 2026)}{self.rng.randint(0, 9999999):07d}",
            ]
        )

    def ticket_ref(self, fake: Faker) -> str:
        return self.rng.choice(
            [
                f"SUP-{self.rng.randint(100, 99999)}",
                f"#{self.rng.randint(1000, 999999)}",
                f"INC{self.rng.randint(10**6, 10**7):07d}",
            ]
        )

    def amount(self, fake: Faker) -> str:
        return fake.pricetag()

    def date(self, fake: Faker) -> str:
        """A date that is not a birth date (an order, a release, an outage), numeric or written out."""
        when = fake.date_between(start_date=date(1970, 1, 1), end_date=date(2030, 12, 31))
        if self.rng.random() < 0.7:
            return when.strftime(self.rng.choice(["%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y"]))
        return self._long_date(fake, when.day, when.month, when.year)


def _fill(template: str, locale: str, values: _Values, offset: int) -> tuple[str, list[Planted], list[DecoySpan]]:
    out, gold, decoys, pos = "", [], [], 0
    for match in SLOT.finditer(template):
        out += template[pos : match.start()]
        slot = match.group(1)
        value = values.draw(slot, locale)
        start, end = offset + len(out), offset + len(out) + len(value)
        (gold.append(Planted(slot, start, end)) if slot in ENTITIES else decoys.append(DecoySpan(slot, start, end)))
        out += value
        pos = match.end()
    return out + template[pos:], gold, decoys


def _usable(template: str, locale: str) -> bool:
    """A template whose national-id slots the locale has (a codice fiscale is not drawn for en_GB)."""
    national = {e for ids in NATIONAL_IDS.values() for e in ids}
    return all(s not in national or s in NATIONAL_IDS.get(locale, ()) for s in SLOT.findall(template))


def generate_corpus(
    n: int, *, seed: int, max_body_lines: int = 4, templates: dict[str, Any] | None = None
) -> list[CorpusRecord]:
    """n documents (kinds and locales drawn evenly), each: opening, 1..max_body_lines body lines cycling
    through the entity types the locale has (the common lines of a type and the locale's native ones), a
    decoy line in about half, a filler line sometimes, closing."""
    templates = templates or load_templates()
    values = _Values(seed)
    rng = values.rng
    kinds = sorted(templates["kinds"])
    body: dict[str, list[str]] = templates["body"]
    native: dict[str, dict[str, list[str]]] = templates.get("native") or {}
    cursor: dict[str, int] = {locale: 0 for locale in LOCALES}
    records: list[CorpusRecord] = []
    for _ in range(n):
        kind, locale = rng.choice(kinds), rng.choice(LOCALES)
        frame = templates["kinds"][kind]
        # National ids thrice in the cycle: each exists in one locale only and would otherwise be too rare to measure.
        types = COMMON_ENTITIES + NATIONAL_IDS.get(locale, ()) * 3
        lines = [rng.choice([t for t in frame["openings"] if _usable(t, locale)])]
        for _ in range(rng.randint(1, max_body_lines)):
            entity = types[cursor[locale] % len(types)]
            cursor[locale] += 1
            lines.append(rng.choice(body[entity] + native.get(locale, {}).get(entity, [])))
        if rng.random() < 0.6:
            lines.insert(rng.randint(1, len(lines)), rng.choice(body["DECOY"]))
        if rng.random() < 0.4:
            lines.insert(rng.randint(1, len(lines)), rng.choice(body["FILLER"]))
        lines.append(rng.choice(frame["closings"]))
        text, gold, decoys = "", [], []
        for i, line in enumerate(lines):
            if i:
                text += "\n"
            filled, line_gold, line_decoys = _fill(line, locale, values, len(text))
            text += filled
            gold += line_gold
            decoys += line_decoys
        records.append(CorpusRecord(text, kind, locale, gold, decoys))
    return records
