"""Phone numbers of every region phonenumbers knows, printed nationally or internationally.

Presidio's PhoneRecognizer runs phonenumbers' matcher for a handful of regions (its defaults include the
invalid codes "UK" and "FE"), so "06 12 34 56 78" or "925 14 90 92" are missed, and its lenient matching
takes ISBNs, EAN codes, versions and dates for numbers. This recognizer reads digit runs itself and asks
phonenumbers whether each run is a valid number (is_valid_number: the numbering plan, not just the length):

  international ("+33 6 12 34 56 78", "0049 30 1234567"): valid for the country code it carries;
  national, after a phone lead-in word in one of the scanner's languages ("tel:", "call me on", "Handy",
  "portable", "móvil", "cellulare", "bel me op"): valid in any region whose national format fits;
  national, without a lead-in: valid in one of the configured home regions, and not shaped or labelled
  like something else (a date, a dotted version, a hyphenated ISBN, an EAN-13 barcode, an order, invoice
  or SKU number).

Scores follow Presidio's: 0.4 for a number alone, 0.75 (Presidio's context-enhanced score) with a lead-in."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneMetadata
from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

# Where a deployment's numbers usually come from; the YAML registry may override (kwarg home_regions).
DEFAULT_HOME_REGIONS: tuple[str, ...] = (
    "US", "CA", "GB", "IE", "DE", "AT", "CH", "FR", "BE", "LU", "NL", "ES", "PT", "IT",
)  # fmt: skip
MIN_DIGITS = 7  # shorter runs are extensions, short codes or postcodes
MAX_DIGITS = 17

# A run of digits and the separators numbers are printed with; it may open with + or ( and must not continue
# a longer token on either side (ORD-2024-000123, v1.2.3456789, #12345678).
_RUN = re.compile(
    r"(?<![\w.#/+\-])(?:\+[ \t]?|\()?\d(?:[\d()]|[ \t]?[.\-/][ \t]?(?=[\d(])|[ \t](?=[\d(]))*\d\)?"
    r"(?:[ \t]?(?:x|ext\.?|extension)[ \t]?\d{1,6})?"  # an extension: (751)572-8623x3573, 555-0100 ext. 12
    r"(?![\w]|[.\-/:]\d)"  # nor right before ":03": "06/21/2007 14:03" is a date and a time
)
# The North American way of printing a number, "(751) 572-8623" or "751-572-8623": the shape alone says
# "phone", so an unassigned area code (made-up and test numbers) does not let it through.
_NANP_SHAPE = re.compile(r"(?:\+?1[ \t.\-]?)?(?:\(\d{3}\)[ \t]?|\d{3}[.\-])\d{3}[.\-]\d{4}")
_EXTENSION = re.compile(r"[ \t]?(?:x|ext\.?|extension)[ \t]?\d{1,6}$")
# Lead-in words: English, German, French, Spanish, Italian, Dutch. Stems match as word prefixes ("call" finds
# "calling" and "callback", "telefon" finds "Telefonnummer"); short words only whole ("tel", not "tell").
_LEAD_IN_STEMS = (
    r"phone|telephon|téléphon|teléfon|telefon|telefoon|mobil|mobiel|cellul|call|llam|chiam|appel|anruf|"
    r"rufnummer|festnetz|bellen|whats ?app"
)
_LEAD_IN_WORDS = (
    r"tel|tél|mob|cell|ring|fax|sms|gsm|handy|portable|móvil|movil|celular|hotline|landline|text me|my number|"
    r"number is|contact number|reach me (?:on|at)|bel me|bel|erreichbar|joindre|numéro de portable"
)
_LEAD_IN = re.compile(rf"(?<![^\W\d_])(?:(?:{_LEAD_IN_STEMS})|(?:{_LEAD_IN_WORDS})(?![^\W\d_]))", re.IGNORECASE)
# Words that say a digit run is something else; between a lead-in and the number they cancel the lead-in.
_OTHER_LABELS = re.compile(
    r"(?<![^\W\d_])(?:isbn|issn|ean|gtin|sku|items?|art(?:icle|ikel)?|orders?|bestellung|commande|pedido|ordine|"
    r"bestelling|invoices?|rechnung|facture|factura|fattura|factuur|ref|reference|tickets?|case|version|ver|v|"
    r"builds?|release|serial|tracking|sendung|parcel|colis|account|konto|iban|bic|customer|kunde|kunden|client|"
    r"cliente|klant|postcode|zip|plz|"
    # business documents and their references: "inv 20254344618", "contract 20246032477", "ASN 20230900388"
    r"inv|contracts?|vertrag|contrat|contrato|contratto|subscriptions?|abo|abonnement|suscripci[óo]n|"
    r"abbonamento|notes?|claims?|expenses?|quotes?|quotation|angebot|devis|presupuesto|preventivo|offerte|"
    r"renewal|asn|shipment|consignment|po|policy|polizza|p[óo]liza|transaction|txn|receipt|booking|"
    r"reservation|membership)"
    r"(?:[\s.:#°-]+(?:no|nr|n°|number|num|nummer|numéro|número|numero|code|id))?[\s.:#°-]*$",
    re.IGNORECASE,
)
_DATE = re.compile(r"\d{1,4}[./\-]\d{1,2}[./\-]\d{1,4}")
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)")
_SPACED_SEPARATOR = re.compile(r"[ \t][/\-][ \t]")
_LEAD_IN_WINDOW = 32  # characters before the number searched for a lead-in word


def _ean13_valid(digits: str) -> bool:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits[:12]))
    return (10 - total % 10) % 10 == int(digits[12])


def _isbn10_valid(chars: str) -> bool:
    if len(chars) != 10 or not chars[:9].isdigit():
        return False
    total = sum((10 - i) * int(c) for i, c in enumerate(chars[:9])) + (10 if chars[9] in "Xx" else int(chars[9]))
    return total % 11 == 0


def looks_like_something_else(run: str, digits: str) -> bool:
    """A run shaped like a date, a dotted version, a hyphenated ISBN or a barcode rather than a phone number."""
    run = _EXTENSION.sub("", run).strip("()")  # "(1998-12-17)"; "5585963644782 x 4" is a barcode and a count
    digits = re.sub(r"\D", "", run)
    if _DATE.fullmatch(run) or _IPV4.fullmatch(run):  # "login from 167.180.237.189" even after "phone"
        return True
    groups = re.split(r"[^\d]+", run.strip("+()"))
    if "." in run and any(not 2 <= len(g) <= 4 for g in groups[1:]):
        return True  # 16.4.18950.3358, 1.2.3456789; French 06.12.34.56.78 keeps even groups
    if "-" in run and len(groups[-1]) == 1:  # ISBNs end in a one-character check group: 0-306-40615-2
        isbn10 = len(groups) == 4 and _isbn10_valid(digits)
        isbn13 = len(groups) == 5 and digits[:3] in ("978", "979") and _ean13_valid(digits)
        if isbn10 or isbn13:
            return True
    return len(digits) == 13 and run.isdigit() and _ean13_valid(digits)


@dataclass(frozen=True, slots=True)
class _Region:
    code: str
    national_prefix: str
    lengths: frozenset[int]

    @property
    def prefix_printed(self) -> bool:
        """Where the trunk prefix is 0 (most of Europe), a national number is written with it ("030 1234567",
        "06 12 34 56 78"): an 11-digit "20216673508" is a reference number, not Leverkusen's 02021 area. North
        America's trunk prefix 1 is usually left out; so is Brazil's 0 before an area code in parentheses,
        which is why runs with one are not held to this (the parentheses say "phone" already)."""
        return self.national_prefix == "0"


class PhoneNumberRecognizer(LocalRecognizer):
    """PHONE_NUMBER, validated by phonenumbers for every region it knows (see the module docstring)."""

    ENTITY = "PHONE_NUMBER"
    SCORE = 0.4
    CONTEXT_SCORE = 0.75

    def __init__(
        self,
        home_regions: Sequence[str] | None = None,
        supported_language: str = "en",
        name: str | None = None,
    ) -> None:
        home = list(home_regions or DEFAULT_HOME_REGIONS)
        unknown = sorted(set(home) - phonenumbers.SUPPORTED_REGIONS)
        if unknown:
            raise ValueError(f"PhoneNumberRecognizer: home_regions {unknown} are not regions phonenumbers knows")
        others = sorted(phonenumbers.SUPPORTED_REGIONS - set(home))
        self._home = [self._region(code) for code in home]
        self._all = self._home + [self._region(code) for code in others]
        super().__init__(supported_entities=[self.ENTITY], name=name, supported_language=supported_language)

    @staticmethod
    def _region(code: str) -> _Region:
        meta = PhoneMetadata.metadata_for_region(code)
        prefix = meta.national_prefix or "" if meta is not None else ""
        lengths = frozenset(meta.general_desc.possible_length) if meta is not None else frozenset()
        return _Region(code, prefix if prefix.isdigit() else "", lengths)

    def load(self) -> None:
        """Nothing to load: phonenumbers' metadata is read in __init__."""

    def valid_in(self, run: str, digits: str, regions: Iterable[_Region], *, as_printed: bool = False) -> str | None:
        """The first region where the nationally printed run is a valid number, if any. Regions whose
        number lengths cannot fit (with or without their trunk prefix) are skipped before parsing; with
        `as_printed`, so are regions whose trunk prefix the run lacks though that country prints it."""
        for region in regions:
            if as_printed and region.prefix_printed and not digits.startswith(region.national_prefix):
                continue
            national = len(digits)
            stripped = national - len(region.national_prefix) if digits.startswith(region.national_prefix) else 0
            if national not in region.lengths and (not region.national_prefix or stripped not in region.lengths):
                continue
            try:
                parsed = phonenumbers.parse(run, region.code)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(parsed):
                return region.code
        return None

    @staticmethod
    def _international(run: str) -> bool:
        """A country code and a national number of a length that country uses. Possible, not valid: the '+'
        and the country code already say "phone number", and a DLP scanner must not let a number through
        because its area code is unassigned (made-up and test numbers, Faker's nl_NL `+31(0)94-5827195`)."""
        compact = run.lstrip("(")
        number = "+" + compact[2:] if compact.startswith("00") else compact
        if not number.startswith("+"):
            return False
        try:
            return phonenumbers.is_possible_number(phonenumbers.parse(number, None))
        except phonenumbers.NumberParseException:
            return False

    @staticmethod
    def _lead_in(text: str, start: int) -> bool:
        """A lead-in word shortly before the run, on its line, with no other label after it."""
        lo = max(text.rfind("\n", 0, start) + 1, start - _LEAD_IN_WINDOW)
        before = text[lo:start]
        last = next(reversed(list(_LEAD_IN.finditer(before))), None)
        if last is None:
            return False
        between = before[last.end() :]
        return not any(c.isdigit() for c in between) and _OTHER_LABELS.search(between) is None

    def _labelled_otherwise(self, text: str, start: int) -> bool:
        lo = max(text.rfind("\n", 0, start) + 1, start - 24)
        return _OTHER_LABELS.search(text[lo:start]) is not None

    def _judge(self, text: str, start: int, run: str, lead_in: bool) -> tuple[float, str] | None:
        digits = re.sub(r"\D", "", run)
        if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
            return None
        if run.startswith(("+", "00", "(+", "(00")):
            return (
                ((self.CONTEXT_SCORE if lead_in else self.SCORE), "international") if self._international(run) else None
            )
        if lead_in:
            region = self.valid_in(run, digits, self._all)
            if region is None or _DATE.fullmatch(run.strip("()")) or _IPV4.fullmatch(run):
                return None
            return self.CONTEXT_SCORE, f"national ({region}) after a lead-in"
        if looks_like_something_else(run, digits) or self._labelled_otherwise(text, start):
            return None
        region = self.valid_in(run, digits, self._home, as_printed="(" not in run)
        if region is None and _NANP_SHAPE.fullmatch(_EXTENSION.sub("", run)):
            return self.SCORE, "North American format"
        return None if region is None else (self.SCORE, f"national ({region})")

    def _spans(self, text: str) -> Iterable[tuple[int, int, float, str]]:
        for match in _RUN.finditer(text):
            start, end = match.span()
            run = match.group()
            # "(0)" trunk markers aside, a run that closes more parentheses than it opens ends before the last.
            if run.endswith(")") and run.count(")") > run.count("("):
                run, end = run[:-1], end - 1
            lead_in = self._lead_in(text, start)
            verdict = self._judge(text, start, run, lead_in)
            if verdict is not None:
                yield start, end, *verdict
                continue
            # "030 1234567 / 0171 2345678": two numbers joined by a spaced separator, each judged alone.
            pos = 0
            for part in _SPACED_SEPARATOR.split(run):
                offset = run.index(part, pos)
                pos = offset + len(part)
                if part != run and (verdict := self._judge(text, start + offset, part, lead_in)) is not None:
                    yield start + offset, start + pos, *verdict

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if entities and self.ENTITY not in entities:
            return []
        return [
            RecognizerResult(
                self.ENTITY,
                start,
                end,
                score,
                AnalysisExplanation(recognizer=self.name, original_score=score, pattern_name=why),
                {
                    RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                },
            )
            for start, end, score, why in self._spans(text)
        ]
