"""Recognizers of personal identifiers with a structure to check: mail addresses on any domain (internal ones
included), IBANs of every country, and EU national identifiers with their checksums (services/scanner/domain/
identifiers.py). Weak formats need a context word nearby; see each class."""

from __future__ import annotations

import re
from collections.abc import Iterator

from services.scanner.adapters.recognizers import RegexPattern, RegexRecognizer
from services.scanner.domain.identifiers import (
    IBAN_LENGTHS,
    de_tax_id_valid,
    es_dni_valid,
    es_nie_valid,
    fr_nir_valid,
    iban_valid,
    it_fiscal_code_valid,
    mail_domain_valid,
    nl_bsn_valid,
    uk_nino_valid,
)

# ---------------------------------------------------------------- mail addresses

# Letters of the alphabets written with spaces between words (Latin with accents, Greek, Cyrillic): in
# "请联系zhang@corp.local谢谢" the address is zhang@corp.local, as \w would not tell.
_MAIL_LETTER = "A-Za-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff"
# Local part: letters, digits, . _ % + - and an inner apostrophe as in o'neil; no leading, trailing or doubled
# dot, and not continuing a longer token on the left. Nor right after a '/': `https://<token>@github.com` is a
# URL's credentials, and read as an address it hid the token from its own recognizer (and from the block a
# secret gets).
_MAIL_LOCAL_CHAR = rf"{_MAIL_LETTER}0-9_%+\-"
_MAIL_LOCAL = rf"(?<![{_MAIL_LOCAL_CHAR}.'/])[{_MAIL_LOCAL_CHAR}]+(?:[.'][{_MAIL_LOCAL_CHAR}]+)*"
# Domain: labels of letters/digits/inner hyphens, a dot, and a final label of letters or punycode; it must not
# run on into more name characters or a call (`x@y.shape(`).
_MAIL_LABEL = rf"[{_MAIL_LETTER}0-9](?:[{_MAIL_LETTER}0-9\-]{{0,61}}[{_MAIL_LETTER}0-9])?"
_MAIL_DOMAIN = (
    rf"(?:{_MAIL_LABEL}\.)+(?:[{_MAIL_LETTER}]{{2,63}}|xn--[a-zA-Z0-9]{{1,59}})"
    rf"(?![{_MAIL_LETTER}0-9_\-]|\.[{_MAIL_LETTER}0-9]|\()"
)


class MailAddressRecognizer(RegexRecognizer):
    """Mail addresses on any syntactically valid domain, internal ones included (corp.local, acme.internal,
    hq.lan). Presidio's EmailRecognizer only accepts public suffixes and asks tldextract, which downloads the
    suffix list; this one needs no list. Files named like addresses (`icon@2x.png`) are rejected by extension,
    version pins (`pkg@1.2.3`) and `user@localhost` by the domain's shape. Keeps Presidio's entity name."""

    ENTITY = "EMAIL_ADDRESS"
    PATTERNS = (RegexPattern("mail address", rf"{_MAIL_LOCAL}@({_MAIL_DOMAIN})", 1.0),)

    def validate(self, value: str) -> bool:
        local, _, domain = value.rpartition("@")
        return len(local) <= 64 and mail_domain_valid(domain)


# ---------------------------------------------------------------- IBAN


class IbanRecognizer(RegexRecognizer):
    """IBANs of every country in the SWIFT registry, compact or printed in groups of four: the country's length
    and BBAN structure and the mod-97 check (services.scanner.domain.identifiers). Presidio's IbanRecognizer
    knows fewer countries. A candidate takes exactly its country's number of characters, so a BIC or word
    after the IBAN is never swallowed, and the next IBAN on the line is still found."""

    ENTITY = "IBAN_CODE"
    # Certain once validated (as Presidio scores it): it must also outscore, by length, a Luhn-valid card
    # number that a run of its digits may contain, or redaction would leave the rest of the IBAN behind.
    PATTERNS = (RegexPattern("iban", r"(?<![A-Za-z0-9])([A-Z]{2})\d\d", 1.0),)

    def candidates(self, text: str) -> Iterator[tuple[RegexPattern, int, int, int]]:
        pattern, compiled = self._compiled[0]
        n, last_end = len(text), 0
        for match in compiled.finditer(text):
            length = IBAN_LENGTHS.get(match.group(1))
            if length is None or match.start() < last_end:
                continue
            pos, taken = match.end(), 4
            while taken < length and pos < n:
                ch = text[pos]
                if ch.isascii() and ch.isalnum():
                    taken += 1
                elif not (ch == " " and pos + 1 < n and text[pos + 1].isascii() and text[pos + 1].isalnum()):
                    break
                pos += 1
            glued = pos < n and text[pos].isascii() and text[pos].isalnum()
            if taken == length and not glued and iban_valid(text[match.start() : pos]):
                last_end = pos
                yield pattern, match.start(), pos, match.start()


# ---------------------------------------------------------------- EU national identifiers
#
# Each validates its checksum (or, for the NINO, which has none, HMRC's allocation rules). Where a checksum
# alone still passes one random digit run in 10-23, the pattern scores 0.4, below the default policy's 0.5,
# and only a context word before it (within 64 characters) lifts it to 0.85: the number is reported when the
# text says what it is. Strict policies can lower min_score to take the bare numbers too.

# Not part of a longer code: no word character, slash, hash, dot or hyphen glued on either side
# ("INV-123456782", "#123456782", "1.123456782", "123456782/01").
_ID_START = r"(?<![\w./#-])"
_ID_END = r"(?![\w]|[-/.,:]\w)"


class _NationalIdRecognizer(RegexRecognizer):
    CONTEXT_WHOLE_WORDS = True
    CONTEXT_WINDOW = 64
    CONTEXT_BOOST = 0.45


class UkNinoRecognizer(_NationalIdRecognizer):
    """UK National Insurance numbers (AB 12 34 56 C). No check digit: the HMRC prefix rules and the A-D
    suffix; the printed, spaced form is distinctive enough alone, the compact one needs context."""

    ENTITY = "UK_NINO"
    _PREFIX = r"(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    PATTERNS = (
        RegexPattern("nino, printed", rf"{_ID_START}{_PREFIX} \d\d \d\d \d\d [A-D]{_ID_END}", 0.6),
        RegexPattern("nino", rf"{_ID_START}{_PREFIX} ?\d{{6}} ?[A-D]{_ID_END}", 0.4),
    )
    # Not "ni" alone: it is a common word in Spanish and French.
    CONTEXT = ("national insurance", "ni number", "ni no", "ni#", "nino", "insurance number", "hmrc")

    def validate(self, value: str) -> bool:
        return uk_nino_valid(value)


class DeTaxIdRecognizer(_NationalIdRecognizer):
    """German Steuer-IdNr: 11 digits (printed 12 345 678 901), digit-repetition rule and MOD 11,10 check."""

    ENTITY = "DE_TAX_ID"
    PATTERNS = (RegexPattern("steuer-idnr", rf"{_ID_START}[1-9]\d(?: ?\d{{3}}){{3}}{_ID_END}", 0.4),)
    CONTEXT = (
        "steuer-id",
        "steuerid",
        "steuer-idnr",
        "steueridnr",
        "steuer-identifikationsnummer",
        "steueridentifikationsnummer",
        "identifikationsnummer",
        "idnr",
        "id-nr",
        "tin",
        "tax id",
        "tax identification number",
        "steuernummer",
    )

    def validate(self, value: str) -> bool:
        return de_tax_id_valid(value)


class FrNirRecognizer(_NationalIdRecognizer):
    """French NIR (numéro de sécurité sociale, 'INSEE number'): 15 characters, 1 72 02 2A 013 121 26.
    Birth month and department structure plus a mod-97 key make a bare match likely enough (0.55). With
    context it scores 1.0: one NIR in ten also passes Luhn and reads as a 15-digit card (UATP, enRoute) to
    Presidio's card recognizer; with equal scores the registry lists this recognizer first, so it wins."""

    ENTITY = "FR_NIR"
    PATTERNS = (
        # sex, year, month, then department + commune (75 056, 2A 004, or overseas 971 05), serial, key
        RegexPattern(
            "nir",
            rf"{_ID_START}[1278] ?\d\d ?\d\d ?(?:(?:\d\d|2[AB]) ?\d{{3}}|9[78]\d ?\d\d) ?\d{{3}} ?\d\d{_ID_END}",
            0.55,
        ),
    )
    CONTEXT = (
        "nir",
        "insee",
        "sécurité sociale",
        "securite sociale",
        "sécu",
        "secu",
        "n° ss",
        "social security",
        "carte vitale",
        "assuré social",
    )

    def validate(self, value: str) -> bool:
        return fr_nir_valid(value)


_ES_CONTEXT = (
    "dni",
    "d.n.i.",
    "nif",
    "n.i.f.",
    "nie",
    "n.i.e.",
    "documento",
    "identidad",
    "identificación",
    "extranjero",
    "id number",
    "id card",
    "identity",
    "tarjeta de residencia",
    # the NIF is Spain's tax number: "tax id 53250794K"
    "tax id",
    "tax number",
    "tin",
    "número fiscal",
    "identificación fiscal",
)


class EsDniRecognizer(_NationalIdRecognizer):
    """Spanish DNI (the NIF of Spanish citizens): 8 digits and the mod-23 check letter (12345678Z)."""

    ENTITY = "ES_NIF"
    PATTERNS = (RegexPattern("dni", rf"{_ID_START}\d\d\.?\d{{3}}\.?\d{{3}}[ -]?[A-Z]{_ID_END}", 0.4),)
    CONTEXT = _ES_CONTEXT

    def validate(self, value: str) -> bool:
        return es_dni_valid(value)


class EsNieRecognizer(_NationalIdRecognizer):
    """Spanish NIE (foreigners' number): X, Y or Z, 7 digits and the mod-23 check letter (X1234567L)."""

    ENTITY = "ES_NIE"
    PATTERNS = (RegexPattern("nie", rf"{_ID_START}[XYZ][ -]?\d{{7}}[ -]?[A-Z]{_ID_END}", 0.4),)
    CONTEXT = _ES_CONTEXT

    def validate(self, value: str) -> bool:
        return es_nie_valid(value)


class ItFiscalCodeRecognizer(_NationalIdRecognizer):
    """Italian codice fiscale: 16 characters of fixed structure (omocodia letters included) and a check
    letter; structure and check together are strong evidence alone (0.8)."""

    ENTITY = "IT_FISCAL_CODE"
    FLAGS = re.IGNORECASE
    PATTERNS = (
        RegexPattern(
            "codice fiscale",
            rf"{_ID_START}[A-Z]{{6}}[0-9LMNP-V]{{2}}[ABCDEHLMPRST][0-9LMNP-V]{{2}}[A-Z][0-9LMNP-V]{{3}}[A-Z]{_ID_END}",
            0.8,
        ),
    )
    CONTEXT = ("codice fiscale", "cod. fiscale", "cod. fisc.", "c.f.", "cf", "fiscal code", "tax code", "tin")
    CONTEXT_BOOST = 0.15

    def validate(self, value: str) -> bool:
        # Written in one case; a mixed-case word that happens to fit the shape is prose.
        return (value.isupper() or value.islower()) and it_fiscal_code_valid(value)


class NlBsnRecognizer(_NationalIdRecognizer):
    """Dutch burgerservicenummer: 9 digits (123456782, 1234.56.782) passing the 11-proof."""

    ENTITY = "NL_BSN"
    PATTERNS = (RegexPattern("bsn", rf"{_ID_START}\d{{4}}([. ]?)\d\d\1\d{{3}}{_ID_END}", 0.4),)
    CONTEXT = (
        "bsn",
        "bsn-nummer",
        "burgerservicenummer",
        "burgerservice nummer",
        "sofinummer",
        "sofi-nummer",
        "citizen service number",
        "persoonsnummer",
    )

    def validate(self, value: str) -> bool:
        return nl_bsn_valid(value)
