"""Dates of birth: a date is personal data when the text says it is a birth date, and only then.

"DOB 04/07/1986", "born on 3 March 1979", "Geburtsdatum: 12.03.1985", "ich bin am 3. März 1979 geboren",
"date de naissance : 12/03/1985", "née le 3 mars 1979", "fecha de nacimiento: 3 de marzo de 1979", "data di
nascita 12/03/1985", "geboortedatum 12-03-1985". An order date, a release date or an outage date has no such
lead-in, so "order date 04/07/2024" or "released on 3 March 2021" are not found. Dates are numeric (day, month
and year in either order, ISO 8601) or written with the month's name in English, German, French, Spanish,
Italian or Dutch, and must be a real calendar date between 1900 and 2099."""

from __future__ import annotations

import re
from datetime import date

from services.scanner.adapters.recognizers import RegexPattern, RegexRecognizer

_MONTH_NAMES = (  # English, German, French, Spanish, Italian, Dutch; names and common abbreviations
    "january jan januar janv janvier enero ene gennaio gen januari",
    "february feb februar févr fév février febrero febbraio febr februari",
    "march mar märz mär mars marzo maart mrt",
    "april apr avril avr abril abr aprile",
    "may mai mayo maggio mag mei",
    "june jun juni juin junio giugno giu",
    "july jul juli juil juillet julio luglio lug",
    "august aug août agosto ago augustus",
    "september sep sept septembre septiembre settembre set",
    "october oct oktober okt octobre octubre ottobre ott",
    "november nov novembre noviembre",
    "december dec dezember dez décembre déc diciembre dic dicembre",
)
_MONTHS: dict[str, int] = {name: i for i, names in enumerate(_MONTH_NAMES, start=1) for name in names.split()}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE = (
    r"\d{1,2}[./\-]\d{1,2}[./\-](?:\d{4}|\d{2})(?!\d)|\d{4}-\d{1,2}-\d{1,2}(?!\d)"
    rf"|\d{{1,2}}(?:st|nd|rd|th|er|º|°|\.)? (?:de )?(?i:{_MONTH})\.?,? (?:de )?\d{{4}}(?!\d)"
    rf"|(?i:{_MONTH})\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}(?!\d)"
)
_LEAD_INS = (
    r"date of birth|birth ?date|birthday|d\.?o\.?b\.?|born(?: on| in)?|"
    r"geburtsdatum|geburtstag|geb\.(?:-?datum)?|geboren(?: am| op)?|"
    r"date de naissance|n[ée](?:e|\(e\))? le|naissance|"
    r"fecha de nacimiento|f\. ?nac\.?|nacid[oa] el|nací el|"
    r"data di nascita|nat[oa] il|"
    r"geboortedatum"
)
# Between the lead-in and the date: a format hint ("Date of birth (dd/mm/yyyy): "), the quotes and colon of a
# JSON or YAML key ('"dob": "1944-12-09"'), up to two small words ("born on", "DOB is", "nato il").
_BETWEEN = (
    r"(?:[ \t]*\([^()\n\d]{1,16}\))?[\"'”]?[ \t]*[:=\-–]?[ \t]*[\"'“]?"
    r"(?:(?:is|was|on|to|as|am|le|el|il|op|the|de|der|du)[ \t]+){0,2}"
)


class DateOfBirthRecognizer(RegexRecognizer):
    """DATE_OF_BIRTH: a date after a birth-date lead-in, or before "geboren" (German puts the verb last)."""

    ENTITY = "DATE_OF_BIRTH"
    FLAGS = re.IGNORECASE
    PATTERNS = (
        RegexPattern("date after a birth lead-in", rf"(?<!\w)(?:{_LEAD_INS}){_BETWEEN}\(?({_DATE})", 0.85, group=1),
        RegexPattern("date before 'geboren'", rf"(?<![\w.])({_DATE})[ \t]+geboren\b", 0.85, group=1),
    )

    def validate(self, value: str) -> bool:
        return parse_date(value) is not None


def parse_date(value: str) -> date | None:
    """The calendar date a matched value names (numeric: day-month-year, month-day-year or ISO), if real."""
    words = re.findall(r"[^\W\d_]+", value.lower())
    numbers = [int(n) for n in re.findall(r"\d+", value)]
    if words:
        months = [_MONTHS[w] for w in words if w in _MONTHS]
        if len(numbers) != 2 or not months:
            return None
        return _real(numbers[1], months[0], numbers[0])
    if len(numbers) != 3:
        return None
    first, second, third = numbers
    if first > 31:  # ISO 8601
        return _real(first, second, third)
    year = third + (1900 if third >= 30 else 2000) if third < 100 else third
    return _real(year, second, first) or _real(year, first, second)


def _real(year: int, month: int, day: int) -> date | None:
    if not 1900 <= year <= 2099:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None
