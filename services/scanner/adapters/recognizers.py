"""Recognizers tunegate adds to Presidio's: the shared regex machinery, credentials, card numbers and health
identifiers. Mail addresses, IBANs and national identifiers: identifier_recognizers.py; person names in
context: name_recognizers.py.

They are self-contained (regex + validation + an in-text context window) because the default NoOp NLP
engine produces no tokens, so Presidio's lemma-based context enhancer cannot see context words; and
self-contained recognizers behave the same inside a plain AnalyzerEngine and inside our fast detector."""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from shared.json_input import parse_json


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
            decoded = parse_json(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
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
