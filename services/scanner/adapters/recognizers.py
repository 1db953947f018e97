"""Recognizers tunegate adds to Presidio's: mail addresses on any domain, IBANs of every country, EU national
identifiers, credentials and health identifiers.

They are self-contained (regex + validation + an in-text context window) because the default NoOp NLP
engine produces no tokens, so Presidio's lemma-based context enhancer cannot see context words; and
self-contained recognizers behave the same inside a plain AnalyzerEngine and inside our fast detector."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

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


@dataclass(frozen=True, slots=True)
class RegexPattern:
    name: str
    regex: str
    score: float
    group: int = 0  # which capture group is the entity (keyword-anchored patterns capture only the value)


class RegexRecognizer(LocalRecognizer):
    """Regex patterns with optional validation and a context window searched in the raw text.

    require_context: a match without a context word within `context_window` characters before it is dropped;
    otherwise a context word raises the score by `context_boost`. Context words match as word prefixes
    ("patient" finds "patients"), or as whole words with CONTEXT_WHOLE_WORDS, for short ones such as "nie" or
    "cf" that begin unrelated words ("niet", "cfg")."""

    ENTITY: str = ""
    PATTERNS: Sequence[RegexPattern] = ()
    CONTEXT: Sequence[str] = ()
    REQUIRE_CONTEXT: bool = False
    CONTEXT_WHOLE_WORDS: bool = False
    CONTEXT_WINDOW: int = 48
    CONTEXT_BOOST: float = 0.1
    FLAGS: int = 0

    def __init__(
        self,
        supported_entity: str | None = None,
        patterns: Sequence[RegexPattern] | None = None,
        context: Sequence[str] | None = None,
        require_context: bool | None = None,
        context_window: int | None = None,
        context_boost: float | None = None,
        supported_language: str = "en",
        name: str | None = None,
    ) -> None:
        self._patterns = list(patterns or self.PATTERNS)
        if not self._patterns:
            raise ValueError(f"{type(self).__name__}: at least one pattern is required")
        self._compiled = [(p, re.compile(p.regex, self.FLAGS)) for p in self._patterns]
        self._context_words = [c.lower() for c in (context if context is not None else self.CONTEXT)]
        words = "(?:" + "|".join(re.escape(c) for c in self._context_words) + ")"
        words = rf"(?<!\w){words}(?!\w)" if self.CONTEXT_WHOLE_WORDS else rf"(?<![a-z0-9]){words}"
        self._context_re = re.compile(words, re.I) if self._context_words else None
        self.require_context = self.REQUIRE_CONTEXT if require_context is None else require_context
        if self.require_context and self._context_re is None:
            raise ValueError(f"{type(self).__name__}: require_context needs context words")
        self.context_window = self.CONTEXT_WINDOW if context_window is None else context_window
        self.context_boost = self.CONTEXT_BOOST if context_boost is None else context_boost
        super().__init__(
            supported_entities=[supported_entity or self.ENTITY],
            name=name,
            supported_language=supported_language,
            context=list(self._context_words),
        )

    def load(self) -> None:
        """Nothing to load: patterns are compiled in __init__."""

    def validate(self, value: str) -> bool:
        """Checksum/structure validation of a matched value; subclasses override."""
        return True

    def candidates(self, text: str) -> Iterator[tuple[RegexPattern, int, int, int]]:
        """(pattern, start, end, context anchor) of every validated match; the context window ends at the anchor."""
        for pattern, compiled in self._compiled:
            for match in compiled.finditer(text):
                start, end = match.span(pattern.group)
                if start != end and self.validate(text[start:end]):
                    yield pattern, start, end, match.start()

    def _has_context(self, text: str, start: int) -> bool:
        if self._context_re is None:
            return False
        return self._context_re.search(text, max(0, start - self.context_window), start) is not None

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        entity = self.supported_entities[0]
        if entities and entity not in entities:
            return []
        results: list[RecognizerResult] = []
        for pattern, start, end, anchor in self.candidates(text):
            score = pattern.score
            if self._context_re is not None:
                if self._has_context(text, anchor):
                    score = min(1.0, score + self.context_boost)
                elif self.require_context:
                    continue
            explanation = AnalysisExplanation(
                recognizer=self.name,
                original_score=pattern.score,
                pattern_name=pattern.name,
                pattern=pattern.regex,
                validation_result=True,
            )
            results.append(
                RecognizerResult(
                    entity,
                    start,
                    end,
                    score,
                    explanation,
                    {
                        RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                        RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                    },
                )
            )
        return results


def shannon_entropy(value: str) -> float:
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# ---------------------------------------------------------------- payment cards


class Mastercard2SeriesRecognizer(RegexRecognizer):
    """Mastercard's 2221-2720 range (issued since 2017), which Presidio's CreditCardRecognizer misses."""

    ENTITY = "CREDIT_CARD"
    PATTERNS = (
        RegexPattern(
            "mastercard 2-series",
            r"\b(?:222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720)[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b",
            0.3,
        ),
    )

    def validate(self, value: str) -> bool:
        return luhn_valid("".join(c for c in value if c.isdigit()))

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        # Like Presidio's card recognizer: a Luhn-valid number is certain, the regex alone is weak.
        results = super().analyze(text, entities, nlp_artifacts)
        for result in results:
            result.score = 1.0
        return results


# ---------------------------------------------------------------- credentials


class AwsAccessKeyRecognizer(RegexRecognizer):
    ENTITY = "AWS_ACCESS_KEY"
    PATTERNS = (RegexPattern("aws access key id", r"\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[A-Z2-7]{16}\b", 0.95),)


class GithubTokenRecognizer(RegexRecognizer):
    ENTITY = "GITHUB_TOKEN"
    PATTERNS = (
        RegexPattern("github classic token", r"\bgh[pousr]_[A-Za-z0-9]{36,251}\b", 0.95),
        RegexPattern("github fine-grained token", r"\bgithub_pat_[A-Za-z0-9_]{22,244}\b", 0.95),
    )


class GitlabTokenRecognizer(RegexRecognizer):
    ENTITY = "GITLAB_TOKEN"
    PATTERNS = (RegexPattern("gitlab personal token", r"\bglpat-[A-Za-z0-9_\-]{20,64}(?![A-Za-z0-9_\-])", 0.95),)


class SlackTokenRecognizer(RegexRecognizer):
    ENTITY = "SLACK_TOKEN"
    PATTERNS = (
        RegexPattern("slack token", r"\bxox[abposre]-[A-Za-z0-9-]{10,200}", 0.95),
        RegexPattern(
            "slack webhook", r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}", 0.95
        ),
    )


class ApiKeyRecognizer(RegexRecognizer):
    """`sk-` style keys (OpenAI, Anthropic, Stripe secret keys)."""

    ENTITY = "API_KEY"
    PATTERNS = (
        RegexPattern(
            "sk- api key",
            r"(?<![A-Za-z0-9_\-])sk-(?:proj-|ant-(?:api\d\d-)?|live_|test_)?[A-Za-z0-9_\-]{20,200}"
            r"(?![A-Za-z0-9_\-])",
            0.9,
        ),
        RegexPattern("stripe key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,99}\b", 0.9),
    )

    def validate(self, value: str) -> bool:
        # Real keys are random: digits, or both letter cases. "sk-learn-style-..." prose slugs are neither.
        body = value.split("-", 1)[-1]
        mixed_case = any(c.isupper() for c in body) and any(c.islower() for c in body)
        return any(c.isalpha() for c in body) and (any(c.isdigit() for c in body) or mixed_case)


class JwtRecognizer(RegexRecognizer):
    ENTITY = "JWT"
    PATTERNS = (RegexPattern("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", 0.95),)

    def validate(self, value: str) -> bool:
        header = value.split(".", 1)[0]
        try:
            decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
        except (ValueError, binascii.Error):
            return False
        return isinstance(decoded, dict) and "alg" in decoded


class PrivateKeyRecognizer(RegexRecognizer):
    ENTITY = "PRIVATE_KEY"
    PATTERNS = (
        RegexPattern(
            "pem private key",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[\s\S]{0,8192}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s\\n]{0,8192})",
            1.0,
        ),
    )


class KeywordSecretRecognizer(RegexRecognizer):
    """High-entropy values assigned to secret-sounding names: `password=...`, `"client_secret": "..."`."""

    ENTITY = "SECRET"
    FLAGS = re.IGNORECASE
    PATTERNS = (
        RegexPattern(
            "keyword = high-entropy value",
            r"(?:pass(?:word|wd|phrase)?|secret|token|api[_\- ]?key|access[_\- ]?key|private[_\- ]?key|"
            r"client[_\- ]?secret|auth[_\- ]?key|credentials?|bearer)\b[\"']?"
            r"(?:\s*(?:[:=]|=>|is|was|:=)\s*|\s+)[\"'`]?([A-Za-z0-9+/_\-=.~!@#$%^&*]{12,200})",
            0.75,
            group=1,
        ),
    )

    def __init__(self, *args: object, min_entropy: float = 3.2, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.min_entropy = min_entropy

    def validate(self, value: str) -> bool:
        value = value.rstrip(".,;:!")
        classes = sum(1 for test in (str.isdigit, str.islower, str.isupper) if any(test(c) for c in value))
        return len(value) >= 12 and classes >= 2 and shannon_entropy(value) >= self.min_entropy


# ---------------------------------------------------------------- health identifiers


class MedicalRecordNumberRecognizer(RegexRecognizer):
    ENTITY = "MEDICAL_RECORD_NUMBER"
    FLAGS = re.IGNORECASE
    PATTERNS = (
        RegexPattern(
            "keyword-anchored mrn",
            r"\b(?:MRN|medical record(?: number| no\.?| #)?|patient (?:id|number|no\.?)|chart (?:number|no\.?))"
            r"\s*(?:[:#]|is|=)?\s*#?\s*([A-Z]{0,3}-?\d{5,10})\b",
            0.85,
            group=1,
        ),
    )


class Icd10Recognizer(RegexRecognizer):
    """ICD-10 codes only in clinical context: bare 'E11.9' could be a part number or a grid reference."""

    ENTITY = "ICD10_CODE"
    PATTERNS = (RegexPattern("icd-10-cm code", r"\b[A-TV-Z][0-9][0-9AB](?:\.[0-9A-TV-Z]{1,4})?\b", 0.6),)
    CONTEXT = (
        "icd",
        "icd-10",
        "icd10",
        "diagnosis",
        "diagnosed",
        "dx",
        "diagnostic code",
        "condition",
        "coded as",
        "code",
        "patient",
        "history of",
        "clinical",
        "admitted",
        "discharge",
    )
    REQUIRE_CONTEXT = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("context_window", 40)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


class NhsNumberRecognizer(RegexRecognizer):
    """UK NHS numbers: mod-11 checksum AND the word NHS nearby (US phone numbers share the 3-3-4 shape)."""

    ENTITY = "UK_NHS"
    PATTERNS = (RegexPattern("nhs number", r"\b\d{3}[- ]?\d{3}[- ]?\d{4}\b", 0.85),)
    CONTEXT = ("nhs",)
    REQUIRE_CONTEXT = True

    def validate(self, value: str) -> bool:
        digits = [int(c) for c in value if c.isdigit()]
        if len(digits) != 10:
            return False
        check = 11 - sum(d * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        return check != 10 and check == digits[9]


# ---------------------------------------------------------------- mail addresses

# Letters of the alphabets written with spaces between words (Latin with accents, Greek, Cyrillic): in
# "请联系zhang@corp.local谢谢" the address is zhang@corp.local, as \w would not tell.
_MAIL_LETTER = "A-Za-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff"
# Local part: letters, digits, . _ % + - and an inner apostrophe as in o'neil; no leading, trailing or doubled
# dot, and not continuing a longer token on the left.
_MAIL_LOCAL_CHAR = rf"{_MAIL_LETTER}0-9_%+\-"
_MAIL_LOCAL = rf"(?<![{_MAIL_LOCAL_CHAR}.'])[{_MAIL_LOCAL_CHAR}]+(?:[.'][{_MAIL_LOCAL_CHAR}]+)*"
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


# ---------------------------------------------------------------- person names in context
#
# Without NER (the default install has no spaCy model) names are only found where the text says a name comes
# next: a greeting ("Hi Maria,", "Dear Mr. Schmidt"), a sign-off ("Regards,\nTomasz Okafor", "Thanks, Jonas"),
# a mention ("I spoke with Ingrid Moreau", "my name is", "assigned to") or a title ("Frau Müller"). The name is
# the run of capitalised words after the trigger (any script's letters, inner hyphens and apostrophes,
# particles such as van/de/von/da/d'); a run holding a word of the stoplist ("Hi Team", "Dear Customer",
# "Regards,\nThe Billing Team") is not a name.

_NAME_TOKEN = re.compile(r"(?:['’][st] |[dDlL]['’] ?)?[^\W\d_](?:[^\W\d_]|['’\-](?=[^\W\d_]))*\.?")


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_PARTICLES = _word_set(
    "van von vom de der den des da das do dos du di del della dei la le lo ten ter te y zu und bin ibn al el 't 's ’s"
)
# Capitalised words that follow greetings, sign-offs and mentions without being names: addressees, teams,
# organisations, function words, days and months, and the words a sentence commonly starts with.
_NOT_NAMES = _word_set(
    """
    team teams support customer customers client clients sir sirs madam madame all everyone everybody anyone
    someone there folks guys people friends colleagues service services desk helpdesk billing sales accounts
    accounting finance legal hr it ops operations security admin administrator administration management
    manager managers department office staff user users member members partner partners world
    the a an this that these those it its i we you he she they our your my his her their us me them
    hello hi hey dear thanks thank regards best cheers kind warm yes no ok okay sure please sorry great good
    fine nice welcome happy just also not now then here today tomorrow yesterday soon asap again
    monday tuesday wednesday thursday friday saturday sunday january february march may july september
    october november december
    corp corporation inc ltd llc plc gmbh ag sa sas srl bv nv co company group bank holdings labs
    technologies technology solutions systems software cloud platform university hospital clinic airlines
    new north south east west saint santa san los las
    equipo todos todas tous toutes équipe collègues zusammen allemaal iedereen tutti team's
    kunde kundin kunden cliente clienti klant klanten kundenservice kundendienst klantenservice servicio
    soporte assistenza supporto serviceteam
    ihr ihre euer eure dein deine votre vos su sus vuestro vostro uw jouw jullie
    system bot assistant agent operator reception
    """
)
_TITLE = (
    r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Herrn|Herr|Frau|Mme|Mlle|M|Sr|Sra|Srta|Sig|Sig\.ra|Dott|Dott\.ssa|Dhr|Mevr|"
    r"Monsieur|Madame|Mademoiselle|Señor|Señora|Signor|Signora|Meneer|Mevrouw|heer|mevrouw)\.?[ \t]+"
)
_LINE_START = r"(?:^|(?<=[:>.!?\"(\[]))[ \t]*"
_GREETINGS = (
    r"hi|hello|hey|hiya|dear|good (?:morning|afternoon|evening)|morning|greetings|bonjour|bonsoir|salut|"
    r"cher|chère|hallo|liebe|lieber|sehr geehrte|sehr geehrter|guten tag|moin|servus|hola|buenos días|"
    r"buenas tardes|estimado|estimada|querido|querida|ciao|salve|buongiorno|gentile|caro|cara|beste|geachte|"
    r"hoi|goedemorgen|goedemiddag"
)
_SIGN_OFFS = (
    r"(?:kind|best|warm|warmest|many|with) regards|regards|best wishes|best|sincerely|yours sincerely|"
    r"yours truly|yours|thanks again|thanks|thank you|many thanks|cheers|mit freundlichen grüßen|"
    r"freundliche grüße|viele grüße|beste grüße|liebe grüße|grüße|lg|cordialement|bien cordialement|"
    r"bien à vous|salutations|saludos|un saludo|atentamente|cordiales saludos|cordiali saluti|distinti saluti|"
    r"saluti|grazie|merci|danke|gracias|met vriendelijke groet|met vriendelijke groeten|vriendelijke groet|"
    r"groeten|groetjes|hartelijke groet|bedankt"
)
# Mentions that are followed by a name whatever comes after it.
_STRONG_MENTIONS = (
    r"spoke (?:with|to)|speaking (?:with|to)|talked (?:to|with)|talking (?:to|with)|chatted with|"
    r"my name is|my name's|name is|assigned to|reassigned to|escalated to|handled by|forwarded to|"
    r"transferred to|reported by|approved by|signed by|requested by|mein name ist|ich heiße|je m'appelle|"
    r"je m’appelle|mon nom est|me llamo|mi nombre es|mi chiamo|mijn naam is|gesprochen mit|hablé con|"
    r"ho parlato con|j'ai parlé (?:avec|à)|j’ai parlé (?:avec|à)"
)
# Mentions that are also followed by other things ("this is urgent", "contact Support"): the name must end
# the clause (punctuation, line end, or "from/at/in ..." follows).
_WEAK_MENTIONS = r"this is|it's|i'm|i am|contact|contact person|agent|cc|attn|ask for|call|reach out to|ik ben"
_CLAUSE_END = re.compile(
    r"$|[ \t]*(?:\r?\n|[,.;:!?)(\[\]|/<–—-])|[ \t]+(?:from|at|in|of|here|with|on|and|for|von|aus|bei|de|du|"
    r"chez|del|di|da|van|bij|en|et|und|y|e)\b|[ \t]+[–—-]"
)
# Stricter, for "thanks Maria!" without a comma: "thanks Current at ..." is two glued sentences.
_PUNCTUATION_END = re.compile(r"$|[ \t]*(?:\r?\n|[,.;:!?)])")


@dataclass(frozen=True, slots=True)
class _NameTrigger:
    name: str
    regex: re.Pattern[str]
    score: float
    clause_end: re.Pattern[str] | None  # if set, what follows the name must match it
    min_words: int = 1


class PersonNameContextRecognizer(LocalRecognizer):
    """PERSON in greetings, sign-offs, mentions and after titles, without NER (see the comment above).

    Scores: 0.9 where the context makes a name near certain (greeting at a line start, sign-off, "spoke with",
    a title), 0.85 for weaker mentions that must also end the clause ("this is Maria from billing",
    "cc Jonas.", "from Ingrid Moreau at ..."); both reach the default policy's PERSON floor of 0.85."""

    ENTITY = "PERSON"
    TRIGGERS: tuple[_NameTrigger, ...] = (
        _NameTrigger("greeting", re.compile(rf"{_LINE_START}(?i:{_GREETINGS})[ \t]+(?:{_TITLE})?", re.M), 0.9, None),
        _NameTrigger(
            "sign-off",
            re.compile(
                rf"(?<!\w)(?i:{_SIGN_OFFS})(?:[ \t]*[,!.]?[ \t]*(?:\r?\n[ \t]*(?:--?[ \t]*)?){{1,3}}|[ \t]*,[ \t]*)"
                rf"(?:{_TITLE})?"
            ),
            0.9,
            _CLAUSE_END,
        ),
        _NameTrigger(
            "thanks",
            re.compile(r"(?<!\w)(?i:thanks|thank you|cheers|merci|danke|gracias|grazie)[ \t]+"),
            0.9,
            _PUNCTUATION_END,
        ),
        _NameTrigger("mention", re.compile(rf"(?<!\w)(?i:{_STRONG_MENTIONS})[ \t]+(?:{_TITLE})?"), 0.9, None),
        _NameTrigger(
            "weak mention", re.compile(rf"(?<!\w)(?i:{_WEAK_MENTIONS})[: \t]+(?:{_TITLE})?"), 0.85, _CLAUSE_END
        ),
        _NameTrigger("title", re.compile(rf"(?<![\w.]){_TITLE.replace('|M|', '|')}"), 0.9, None),
        # "a call from Ingrid Moreau at the front desk": two words at least, places and firms are stoplisted.
        _NameTrigger("from", re.compile(r"(?<!\w)(?i:from)[ \t]+"), 0.85, _CLAUSE_END, min_words=2),
    )

    def __init__(self, supported_language: str = "en", name: str | None = None) -> None:
        super().__init__(supported_entities=[self.ENTITY], name=name, supported_language=supported_language)

    def load(self) -> None:
        """Nothing to load: triggers are compiled at import."""

    @staticmethod
    def name_at(text: str, pos: int, trigger: _NameTrigger) -> tuple[int, int] | None:
        """(start, end) of the name starting at pos, or None when what follows is not a name."""
        words: list[tuple[int, int, str]] = []  # (start, end, kind) with kind name | particle | initial
        while len(words) < 7:
            match = _NAME_TOKEN.match(text, pos)
            if match is None:
                break
            token = match.group()
            bare = token.rstrip(".")
            core = re.sub(r"^(?:['’][st] |[dDlL]['’] ?)", "", bare)
            if bare.lower() in _PARTICLES or (core != bare and not core):
                kind, end = "particle", match.start() + len(bare)
            elif len(bare) == 1 and bare.isupper() and token.endswith("."):
                kind, end = "initial", match.end()  # "Hans D. Müller"
            elif core[:1].isupper() and (len(core) == 1 or not core.isupper()) and core.lower() not in _PARTICLES:
                kind, end = "name", match.start() + len(bare)
            else:
                break
            if kind == "name" and (core.lower() in _NOT_NAMES or core.rstrip("'’s").lower() in _NOT_NAMES):
                return None
            words.append((match.start(), end, kind))
            if text[end : end + 1] != " ":
                break
            pos = end + 1
        while words and words[-1][2] == "particle":
            words.pop()
        if sum(kind == "name" for _, _, kind in words) < trigger.min_words:
            return None
        start, end = words[0][0], words[-1][1]
        if trigger.clause_end is not None and trigger.clause_end.match(text, end) is None:
            return None
        return start, end

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if entities and self.ENTITY not in entities:
            return []
        best: dict[tuple[int, int], tuple[float, str]] = {}
        for trigger in self.TRIGGERS:
            for match in trigger.regex.finditer(text):
                span = self.name_at(text, match.end(), trigger)
                if span is not None and trigger.score > best.get(span, (0.0, ""))[0]:
                    best[span] = (trigger.score, trigger.name)
        return [
            RecognizerResult(
                self.ENTITY,
                start,
                end,
                score,
                AnalysisExplanation(recognizer=self.name, original_score=score, pattern_name=f"name after {why}"),
                {
                    RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                },
            )
            for (start, end), (score, why) in sorted(best.items())
        ]
