"""Pure validation of the identifiers the scanner recognizes: IBAN, EU national ids, mail domains.

Every function takes the value as written (separators included) and answers whether it is structurally and
arithmetically possible. A check digit turns a digit run from "could be anything" into "almost surely this
identifier": the recognizers only report values that pass. No Presidio, no I/O."""

from __future__ import annotations

import re
from collections import Counter

# ---------------------------------------------------------------- IBAN

# BBAN structure per country from the SWIFT IBAN Registry (release 101): n = digits, a = upper-case letters,
# c = letters or digits; the IBAN is the 2-letter country code, 2 check digits and the BBAN.
IBAN_BBAN_FORMATS: dict[str, str] = {
    "AD": "4!n4!n12!c", "AE": "3!n16!n", "AL": "8!n16!c", "AT": "5!n11!n", "AZ": "4!a20!c",
    "BA": "3!n3!n8!n2!n", "BE": "3!n7!n2!n", "BG": "4!a4!n2!n8!c", "BH": "4!a14!c", "BI": "5!n5!n11!n2!n",
    "BR": "8!n5!n10!n1!a1!c", "BY": "4!c4!n16!c", "CH": "5!n12!c", "CR": "4!n14!n", "CY": "3!n5!n16!c",
    "CZ": "4!n16!n", "DE": "8!n10!n", "DJ": "5!n5!n11!n2!n", "DK": "4!n9!n1!n", "DO": "4!c20!n",
    "EE": "2!n14!n", "EG": "4!n4!n17!n", "ES": "4!n4!n1!n1!n10!n", "FI": "3!n11!n", "FK": "2!a12!n",
    "FO": "4!n9!n1!n", "FR": "5!n5!n11!c2!n", "GB": "4!a6!n8!n", "GE": "2!a16!n", "GI": "4!a15!c",
    "GL": "4!n9!n1!n", "GR": "3!n4!n16!c", "GT": "4!c20!c", "HN": "4!a20!n", "HR": "7!n10!n",
    "HU": "3!n4!n1!n15!n1!n", "IE": "4!a6!n8!n", "IL": "3!n3!n13!n", "IQ": "4!a3!n12!n", "IS": "4!n2!n6!n10!n",
    "IT": "1!a5!n5!n12!c", "JO": "4!a4!n18!c", "KW": "4!a22!c", "KZ": "3!n13!c", "LB": "4!n20!c",
    "LC": "4!a24!c", "LI": "5!n12!c", "LT": "5!n11!n", "LU": "3!n13!c", "LV": "4!a13!c", "LY": "3!n3!n15!n",
    "MC": "5!n5!n11!c2!n", "MD": "2!c18!c", "ME": "3!n13!n2!n", "MK": "3!n10!c2!n", "MN": "4!n12!n",
    "MR": "5!n5!n11!n2!n", "MT": "4!a5!n18!c", "MU": "4!a2!n2!n12!n3!n3!a", "NI": "4!a20!n", "NL": "4!a10!n",
    "NO": "4!n6!n1!n", "OM": "3!n16!c", "PK": "4!a16!c", "PL": "8!n16!n", "PS": "4!a21!c",
    "PT": "4!n4!n11!n2!n", "QA": "4!a21!c", "RO": "4!a16!c", "RS": "3!n13!n2!n", "RU": "9!n5!n15!c",
    "SA": "2!n18!c", "SC": "4!a2!n2!n16!n3!a", "SD": "2!n12!n", "SE": "3!n16!n1!n", "SI": "5!n8!n2!n",
    "SK": "4!n6!n10!n", "SM": "1!a5!n5!n12!c", "SO": "4!n3!n12!n", "ST": "4!n4!n11!n2!n", "SV": "4!a20!n",
    "TL": "3!n14!n2!n", "TN": "2!n3!n13!n2!n", "TR": "5!n1!n16!c", "UA": "6!n19!c", "VA": "3!n15!n",
    "VG": "4!a16!n", "XK": "4!n10!n2!n", "YE": "4!a4!n18!c",
}  # fmt: skip

_BBAN_CLASS = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Z0-9]"}


def _bban_regex(spec: str) -> re.Pattern[str]:
    parts = re.findall(r"(\d+)!([nac])", spec)
    return re.compile("".join(f"{_BBAN_CLASS[kind]}{{{count}}}" for count, kind in parts))


_BBAN_PATTERNS = {country: _bban_regex(spec) for country, spec in IBAN_BBAN_FORMATS.items()}
IBAN_LENGTHS: dict[str, int] = {
    country: 4 + sum(int(n) for n in re.findall(r"(\d+)!", spec)) for country, spec in IBAN_BBAN_FORMATS.items()
}


def mod97(value: str) -> int:
    """ISO 7064 MOD 97-10 remainder of an alphanumeric string, letters counting A=10 .. Z=35."""
    remainder = 0
    for ch in value:
        remainder = (remainder * (100 if ch.isalpha() else 10) + int(ch, 36)) % 97
    return remainder


def iban_valid(value: str) -> bool:
    """A known country, that country's length and BBAN structure, and check digits giving mod 97 == 1."""
    compact = "".join(value.split()).upper()
    country, check = compact[:2], compact[2:4]
    pattern = _BBAN_PATTERNS.get(country)
    if pattern is None or len(compact) != IBAN_LENGTHS[country] or not check.isdigit():
        return False
    if not compact.isascii() or pattern.fullmatch(compact[4:]) is None:
        return False
    return mod97(compact[4:] + compact[:4]) == 1


# ---------------------------------------------------------------- UK National Insurance number

# HMRC: the first letter is never D F I Q U V, the second never D F I O Q U V, and these prefixes are never
# issued; the suffix is A-D. There is no check digit, so recognizers lean on context.
_NINO_UNISSUED_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_NINO = re.compile(r"([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])(\d{6})([A-D])")


def uk_nino_valid(value: str) -> bool:
    match = _NINO.fullmatch("".join(value.split()).upper())
    return match is not None and match.group(1) not in _NINO_UNISSUED_PREFIXES


# ---------------------------------------------------------------- German tax id (Steuer-IdNr)


def de_tax_id_valid(value: str) -> bool:
    """11 digits, no leading zero; in the first ten exactly one digit occurs twice or three times and the
    others once; the last is the ISO 7064 MOD 11,10 check digit."""
    digits = "".join(value.split())
    if len(digits) != 11 or not digits.isascii() or not digits.isdigit() or digits[0] == "0":
        return False
    repeated = [n for n in Counter(digits[:10]).values() if n > 1]
    if len(repeated) != 1 or repeated[0] not in (2, 3):
        return False
    product = 10
    for ch in digits[:10]:
        total = (int(ch) + product) % 10 or 10
        product = total * 2 % 11
    return (11 - product) % 10 == int(digits[10])


# ---------------------------------------------------------------- French NIR (INSEE number)

# sex (1, 2; 7, 8 for provisional numbers), year, month, department (2A/2B for Corsica), commune, serial, key
_NIR = re.compile(r"([1278])(\d\d)(\d\d)(\d\d|2[AB])(\d{3})(\d{3})(\d\d)")


def fr_nir_valid(value: str) -> bool:
    """Structure (months 01-12, or 20-42 and 50-99 standing in where the civil record has no month; no
    department 00, serial 000) and the key: 97 - (first 13 digits mod 97), Corsica's 2A/2B counting 19/18."""
    match = _NIR.fullmatch("".join(value.split()).upper())
    if match is None:
        return False
    _, _, month, department, _, serial, key = match.groups()
    month_no = int(month)
    if not (1 <= month_no <= 12 or 20 <= month_no <= 42 or month_no >= 50):
        return False
    if department == "00" or serial == "000":
        return False
    body = match.group(0)[:13].replace("2A", "19", 1).replace("2B", "18", 1)
    return 97 - int(body) % 97 == int(key)


# ---------------------------------------------------------------- Spanish DNI / NIE

_ES_CHECK_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _es_check_letter(number: int) -> str:
    return _ES_CHECK_LETTERS[number % 23]


def es_dni_valid(value: str) -> bool:
    """8 digits and the letter at (number mod 23) in the official table."""
    compact = re.sub(r"[\s.\-]", "", value).upper()
    if len(compact) != 9 or not compact[:8].isascii() or not compact[:8].isdigit():
        return False
    return compact[8] == _es_check_letter(int(compact[:8]))


def es_nie_valid(value: str) -> bool:
    """X, Y or Z (standing for 0, 1, 2), 7 digits and the DNI check letter of the resulting number."""
    compact = re.sub(r"[\s.\-]", "", value).upper()
    if len(compact) != 9 or compact[0] not in "XYZ" or not compact[1:8].isascii() or not compact[1:8].isdigit():
        return False
    return compact[8] == _es_check_letter(int(str("XYZ".index(compact[0])) + compact[1:8]))


# ---------------------------------------------------------------- Italian codice fiscale

# Digits in the date and place fields may be replaced by these letters (omocodia) when two people would
# otherwise share a code.
_OMOCODIA = "LMNPQRSTUV"
_CF_MONTHS = "ABCDEHLMPRST"
_CF_ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23]
_CF = re.compile(r"[A-Z]{6}[0-9LMNP-V]{2}[ABCDEHLMPRST][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z]")


def _cf_value(ch: str) -> int:
    """Position in the alphabet for letters, the digit for digits (the codice fiscale's even-position value)."""
    return int(ch) if ch.isdigit() else ord(ch) - ord("A")


def it_fiscal_code_valid(value: str) -> bool:
    """16 characters: surname and name letters, birth year, month letter, day (+40 for women), birthplace
    code, and a check letter: odd positions through a fixed table, even ones by value, sum mod 26."""
    code = value.strip().upper()
    if _CF.fullmatch(code) is None:
        return False
    day = int("".join(str(_OMOCODIA.index(c)) if c in _OMOCODIA else c for c in code[9:11]))
    if not (1 <= day <= 31 or 41 <= day <= 71):
        return False
    total = sum(_CF_ODD[_cf_value(c)] for c in code[0:15:2]) + sum(_cf_value(c) for c in code[1:15:2])
    return code[15] == chr(ord("A") + total % 26)


# ---------------------------------------------------------------- Dutch BSN


def nl_bsn_valid(value: str) -> bool:
    """9 digits passing the 11-proof: 9*d1 + 8*d2 + ... + 2*d8 - d9 is a multiple of 11 (and not 0)."""
    digits = re.sub(r"[\s.]", "", value)
    if len(digits) != 9 or not digits.isascii() or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits, (9, 8, 7, 6, 5, 4, 3, 2, -1), strict=True))
    return total % 11 == 0 and total != 0


# ---------------------------------------------------------------- mail domains

# Extensions of files named like `icon@2x.png` (retina assets) or `pkg@1.0.tgz`: syntactically a domain, in
# practice a file. None is a delegated top-level domain except the brand gTLDs map, mov and zip, which nobody
# mails from (tests check this against the public-suffix snapshot).
FILE_EXTENSIONS = frozenset({
    "png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "bmp", "ico", "tif", "tiff", "heic", "psd", "pdf", "txt",
    "log", "csv", "tsv", "json", "yaml", "yml", "xml", "html", "htm", "css", "scss", "sass", "less", "js", "mjs",
    "cjs", "jsx", "ts", "tsx", "map", "vue", "lock", "toml", "ini", "cfg", "conf", "env", "tgz", "gz", "xz",
    "tar", "zip", "mov", "whl", "egg", "jar", "exe", "dll", "dmg", "iso", "apk", "wav", "ogg", "flac", "webm",
    "mkv", "avi",
})  # fmt: skip


def mail_domain_valid(domain: str) -> bool:
    """Any syntactically valid host name with at least two labels, internal ones included (corp.local,
    acme.internal, hq.lan): labels of 1-63 letters, digits or inner hyphens, 253 characters at most, a final
    label of letters (or an xn-- punycode label), and not a file extension."""
    if len(domain) > 253:
        return False
    labels = domain.split(".")
    if len(labels) < 2 or any(not 1 <= len(label) <= 63 for label in labels):
        return False
    if any(label.startswith("-") or label.endswith("-") for label in labels):
        return False
    tld = labels[-1].lower()
    if tld.startswith("xn--"):
        return tld[4:].isalnum()
    return len(tld) >= 2 and tld.isalpha() and tld not in FILE_EXTENSIONS
