"""Checksums and structure rules of the identifiers the scanner recognizes (services.scanner.domain.identifiers).

Valid values come from Faker where it has a provider (nl_NL BSN, it_IT codice fiscale, es_ES DNI/NIE, fr_FR NIR,
IBANs of many locales), from published examples (SWIFT registry IBANs, python-stdnum's documented ids), and,
where Faker has none (German Steuer-IdNr), from Presidio's independent validator. Invalid values are single-
character changes, which each of these checks is built to catch."""

from __future__ import annotations

import random

import pytest
from presidio_analyzer.predefined_recognizers import DeTaxIdRecognizer as PresidioDeTaxId
from presidio_analyzer.predefined_recognizers import ItFiscalCodeRecognizer as PresidioItFiscalCode

from services.scanner.domain.identifiers import (
    FILE_EXTENSIONS,
    IBAN_BBAN_FORMATS,
    IBAN_LENGTHS,
    de_tax_id_valid,
    es_dni_valid,
    es_nie_valid,
    fr_nir_valid,
    iban_valid,
    it_fiscal_code_valid,
    mail_domain_valid,
    mod97,
    nl_bsn_valid,
    uk_nino_valid,
)
from tests.scanner.identifier_samples import N, change_one_digit, faker_values, generated_iban

# ---------------------------------------------------------------- IBAN

# Examples published in the SWIFT IBAN registry / national bank documentation, one per country shown.
PUBLISHED_IBANS = [
    "DE89370400440532013000", "GB29NWBK60161331926819", "NL91ABNA0417164300", "FR1420041010050500013M02606",
    "ES9121000418450200051332", "IT60X0542811101000000123456", "BE68539007547034", "CH9300762011623852957",
    "AT611904300234573201", "NO9386011117947", "PL61109010140000071219812874", "MT84MALT011000012345MTLCAST001S",
    "RU0304452522540817810538091310419", "SC18SSCB11010000000000001497USD", "LC55HEMM000100010012001200023015",
    "BI4210000100010000332045181", "DJ2100010000000154000100186", "MN121234123456789123",
    "NI45BAPR00000013000003558124", "SO211000001001000100141", "YE15CBYE0001018861234567891234",
    "HN88CABF00000000000250005469", "OM810180000001299123456", "FK88SC123456789012", "SD2129010501234001",
    "LY83002048000020100120361", "EG380019000500000000263180002", "IQ98NBIQ850123456789012",
    "SV62CENR00000000000000700025", "VA59001123000012345678", "UA213223130000026007233566001",
    "BY13NBRB3600900000002Z00AB00", "BR1800360305000010009795493C1", "MU17BOMM0101101030300200000MUR",
]  # fmt: skip


def test_the_registry_covers_every_iban_country() -> None:
    # SWIFT IBAN registry release 101: 89 countries, 15 (Norway) to 33 (Russia) characters.
    assert len(IBAN_LENGTHS) == 89
    assert (IBAN_LENGTHS["NO"], IBAN_LENGTHS["BE"], IBAN_LENGTHS["DE"], IBAN_LENGTHS["FR"]) == (15, 16, 22, 27)
    assert (IBAN_LENGTHS["MT"], IBAN_LENGTHS["LC"], IBAN_LENGTHS["RU"]) == (31, 32, 33)


def test_published_ibans_pass_and_any_changed_digit_fails() -> None:
    rng = random.Random(1)
    assert all(iban_valid(v) for v in PUBLISHED_IBANS)
    assert not any(iban_valid(change_one_digit(v, rng)) for v in PUBLISHED_IBANS for _ in range(10))


@pytest.mark.parametrize("country", sorted(IBAN_BBAN_FORMATS))
def test_generated_ibans_of_every_country(country: str) -> None:
    rng = random.Random(country)
    values = [generated_iban(country, rng) for _ in range(20)]
    assert all(len(v) == IBAN_LENGTHS[country] and iban_valid(v) for v in values)
    grouped = [" ".join(v[i : i + 4] for i in range(0, len(v), 4)) for v in values]
    assert all(iban_valid(v) for v in grouped)
    assert not any(iban_valid(v + "0") or iban_valid(v[:-1]) for v in values)  # wrong length
    assert not any(iban_valid(change_one_digit(v, rng)) for v in values)


def test_faker_ibans_of_many_locales() -> None:
    locales = ["en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT", "de_AT", "de_CH", "pl_PL", "pt_PT", "fi_FI"]
    values = [v for locale in locales for v in faker_values(locale, "iban", 11)[:50]]
    assert all(iban_valid(v) for v in values)


def test_iban_rejects_unknown_countries_wrong_structure_and_check_digits() -> None:
    assert mod97("DE89370400440532013000"[4:] + "DE89") == 1
    assert not iban_valid("XX89370400440532013000")  # no such country
    assert not iban_valid("DE8937040044053201300A")  # Germany's BBAN is all digits
    assert not iban_valid("NL91ABNA041716430")  # one character short
    assert not iban_valid("DE00370400440532013000")  # check digits 00 are never valid
    assert not iban_valid("ISBN9783161484100")


# ---------------------------------------------------------------- UK NINO


def test_uk_nino_follows_hmrc_allocation_rules() -> None:
    assert uk_nino_valid("AB 12 34 56 C") and uk_nino_valid("JG103759A") and uk_nino_valid("ab123456d")
    assert not uk_nino_valid("QQ123456C")  # Q is never used (HMRC's own placeholder)
    assert not uk_nino_valid("AO123456C")  # O never second
    assert not uk_nino_valid("DA123456C")  # D never first
    assert not any(uk_nino_valid(f"{p}123456A") for p in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"))
    assert not uk_nino_valid("AB123456E")  # suffix is A-D
    assert not uk_nino_valid("AB12345C")


def test_faker_en_gb_ninos_are_hmrc_placeholders_and_rejected() -> None:
    # Faker's en_GB ssn() returns ZZ-prefixed numbers (never issued, used for unknown NINOs) with an
    # out-of-range suffix; they must not count as real ones.
    values = faker_values("en_GB", "ssn", 3)[:50]
    assert all(v.replace(" ", "").startswith("ZZ") for v in values)
    assert not any(uk_nino_valid(v) for v in values)


# ---------------------------------------------------------------- German Steuer-IdNr


def test_de_tax_id_published_examples() -> None:
    assert de_tax_id_valid("36 574 261 809") and de_tax_id_valid("36574261809")  # python-stdnum's example
    assert de_tax_id_valid("86095742719")  # Presidio's example
    assert not de_tax_id_valid("36574261890")  # wrong check digit
    assert not de_tax_id_valid("36554266806")  # more than one digit repeated
    assert not de_tax_id_valid("06574261809")  # leading zero


def test_de_tax_id_agrees_with_presidios_validator() -> None:
    """Faker has no Steuer-IdNr provider: compare with Presidio's independent implementation on random bodies
    that satisfy the digit rule, with every possible check digit (exactly one is right)."""
    presidio = PresidioDeTaxId()
    rng = random.Random(7)
    bodies: set[str] = set()
    while len(bodies) < N:
        digits = rng.sample("0123456789", 9)
        digits.insert(rng.randrange(10), rng.choice(digits))  # one digit twice, one missing
        if digits[0] != "0":
            bodies.add("".join(digits))
    for body in bodies:
        ours = [de_tax_id_valid(body + str(check)) for check in range(10)]
        theirs = [bool(presidio.validate_result(body + str(check))) for check in range(10)]
        assert ours == theirs, body
        assert sum(ours) == 1, body


# ---------------------------------------------------------------- French NIR


def test_fr_nir_faker_values_pass_and_changed_digits_fail() -> None:
    rng = random.Random(5)
    values = faker_values("fr_FR", "ssn", 5)
    assert any("2A" in v or "2B" in v for v in values) and any(v[5:7] == "97" for v in values)
    assert all(fr_nir_valid(v) for v in values)
    assert not any(fr_nir_valid(change_one_digit(v, rng)) for v in values)


def test_fr_nir_published_examples_and_structure() -> None:
    assert fr_nir_valid("2 95 10 99 126 111 93")  # born abroad (department 99)
    assert fr_nir_valid("253072B07300470") and fr_nir_valid("253072A07300443")  # Corsica
    assert not fr_nir_valid("295109912611199")  # wrong key
    assert not fr_nir_valid("253072C07300443")  # no department 2C
    assert not fr_nir_valid("395109912611193")  # sex digit 3 is never issued
    assert not fr_nir_valid("2 95 15 99 126 111 93".replace("111 93", "111 00"))  # month 15
    assert not fr_nir_valid("29510991261119")  # 14 characters


# ---------------------------------------------------------------- Spanish DNI / NIE


def test_es_dni_and_nie_faker_values_pass_and_changed_digits_fail() -> None:
    rng = random.Random(9)
    dnis, nies = faker_values("es_ES", "nif", 9), faker_values("es_ES", "nie", 9)
    assert all(es_dni_valid(v) for v in dnis) and all(es_nie_valid(v) for v in nies)
    assert not any(es_dni_valid(change_one_digit(v, rng)) for v in dnis)
    assert not any(es_nie_valid(change_one_digit(v, rng)) for v in nies)
    assert not any(es_dni_valid(v) for v in nies) and not any(es_nie_valid(v) for v in dnis)


def test_es_published_examples() -> None:
    assert es_dni_valid("12345678Z") and es_dni_valid("54362315-K") and es_dni_valid("54.362.315-K")
    assert not es_dni_valid("54362315Z")
    assert es_nie_valid("X-2482300-W") and es_nie_valid("x2482300w") and es_nie_valid("Y1234567X")
    assert not es_nie_valid("X2482300A") and not es_nie_valid("W2482300W")


# ---------------------------------------------------------------- Italian codice fiscale


def test_it_fiscal_code_faker_values_pass_and_agree_with_presidio() -> None:
    presidio = PresidioItFiscalCode()
    values = faker_values("it_IT", "ssn", 13)
    assert all(it_fiscal_code_valid(v) for v in values)
    wrong_check = [v[:15] + ("A" if v[15] != "A" else "B") for v in values]
    assert not any(it_fiscal_code_valid(v) for v in wrong_check)
    assert all(bool(presidio.validate_result(v)) == it_fiscal_code_valid(v) for v in values + wrong_check)


def test_it_fiscal_code_published_examples_and_omocodia() -> None:
    assert it_fiscal_code_valid("RCCMNL83S18D969H")  # python-stdnum's example
    assert it_fiscal_code_valid("RSSMRA85T10A562S")  # the Agenzia delle Entrate's Mario Rossi
    # omocodia: the last digit of the place code (2) replaced by N, with the check letter recomputed
    assert it_fiscal_code_valid("RSSMRA85T10A56NH")
    assert not it_fiscal_code_valid("RSSMRA85T10A562T")
    assert not it_fiscal_code_valid("RSSMRA85T80A562S")  # day 80 does not exist
    assert not it_fiscal_code_valid("RSSMRA85Z10A562S")  # Z is no month


# ---------------------------------------------------------------- Dutch BSN


def test_nl_bsn_faker_values_pass_and_changed_digits_fail() -> None:
    rng = random.Random(17)
    values = faker_values("nl_NL", "ssn", 17)
    assert all(nl_bsn_valid(v) for v in values)
    assert not any(nl_bsn_valid(change_one_digit(v, rng)) for v in values)


def test_nl_bsn_published_examples() -> None:
    assert nl_bsn_valid("111222333") and nl_bsn_valid("1112.22.333") and nl_bsn_valid("123456782")
    assert not nl_bsn_valid("1112.52.333") and not nl_bsn_valid("123456789")
    assert not nl_bsn_valid("000000000")  # passes the arithmetic, but no one's number
    assert not nl_bsn_valid("1112223334")


# ---------------------------------------------------------------- mail domains


@pytest.mark.parametrize(
    "domain", ["corp.local", "acme.internal", "hq.lan", "example.com", "mail.example.co.uk", "163.com",
               "my-company.eu", "bücher.de", "xn--bcher-kva.xn--p1ai", "a.io"],
)  # fmt: skip
def test_mail_domains_accepted(domain: str) -> None:
    assert mail_domain_valid(domain)


@pytest.mark.parametrize(
    "domain", ["localhost", "2x.png", "1.2.3", "4.17.21", "k.t", "-bad.com", "bad-.com", "a..com", "x.c0m",
               "report.pdf", "bundle.min.js", "a" * 64 + ".com"],
)  # fmt: skip
def test_mail_domains_rejected(domain: str) -> None:
    assert not mail_domain_valid(domain)


def test_rejected_file_extensions_are_not_mail_top_level_domains() -> None:
    """Read the public-suffix snapshot bundled with tldextract (no network): only the brand gTLDs map, mov and
    zip are both a file extension and a delegated TLD."""
    import tldextract

    snapshot = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)
    top_level = {suffix for suffix in snapshot.tlds if "." not in suffix}
    assert len(top_level) > 1000
    assert FILE_EXTENSIONS & top_level == {"map", "mov", "zip"}
