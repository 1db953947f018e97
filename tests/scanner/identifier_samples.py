"""Valid and look-alike identifiers for the checksum and recognizer tests: Faker where it has a provider,
generators following the published structure where it has none (German Steuer-IdNr, UK NINO, IBAN of every
registry country)."""

from __future__ import annotations

import random
import re
import string

from faker import Faker

from services.scanner.domain.identifiers import IBAN_BBAN_FORMATS, de_tax_id_valid

N = 300  # generated values per identifier in the checksum tests


def faker_values(locale: str, method: str, seed: int, n: int = N) -> list[str]:
    fake = Faker(locale)
    fake.seed_instance(seed)
    return [getattr(fake, method)() for _ in range(n)]


def change_one_digit(value: str, rng: random.Random) -> str:
    """The same value with one digit replaced by a different digit (every check used here catches that)."""
    positions = [i for i, c in enumerate(value) if c.isdigit()]
    i = rng.choice(positions)
    return value[:i] + rng.choice([d for d in string.digits if d != value[i]]) + value[i + 1 :]


def generated_iban(country: str, rng: random.Random) -> str:
    """A random BBAN of the country's registry structure with check digits computed by plain big-integer
    arithmetic (independent of identifiers.mod97's digit-by-digit loop)."""
    alphabets = {"n": string.digits, "a": string.ascii_uppercase, "c": string.ascii_uppercase + string.digits}
    bban = "".join(
        rng.choice(alphabets[kind])
        for count, kind in re.findall(r"(\d+)!([nac])", IBAN_BBAN_FORMATS[country])
        for _ in range(int(count))
    )
    as_number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - as_number % 97:02d}{bban}"


def grouped(value: str, size: int = 4) -> str:
    """The printed form: groups of `size` characters separated by spaces."""
    return " ".join(value[i : i + size] for i in range(0, len(value), size))


def generated_de_tax_id(rng: random.Random) -> str:
    """Faker has no Steuer-IdNr: one digit twice among the first ten, one missing, no leading zero, and the
    check digit that validates (its arithmetic is tested against Presidio's implementation)."""
    while True:
        digits = rng.sample("0123456789", 9)
        digits.insert(rng.randrange(10), rng.choice(digits))
        if digits[0] == "0":
            continue
        body = "".join(digits)
        for check in string.digits:
            if de_tax_id_valid(body + check):
                return body + check


NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"


def generated_uk_nino(rng: random.Random) -> str:
    """Faker's en_GB ssn() gives never-issued ZZ numbers: draw a prefix HMRC allocates instead."""
    while True:
        prefix = rng.choice(NINO_FIRST) + rng.choice(NINO_SECOND)
        if prefix not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
            return prefix + "".join(rng.choice(string.digits) for _ in range(6)) + rng.choice("ABCD")
