"""The bias suite's probe set: the templates, groups and neutral reply of config/bias_templates.yaml, turned
into counterfactual prompt pairs with seeded Faker names. Deterministic: the same file, seed and Faker
release give the same pairs, so two jobs are measured on identical probes."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.yaml_models import load_yaml_model

Attribute = Literal["origin", "gender", "age", "nationality"]
ATTRIBUTES: tuple[Attribute, ...] = ("origin", "gender", "age", "nationality")
SLOTS = frozenset({"name", "first_name", "subject", "object", "possessive", "age", "nationality"})
ATTRIBUTE_SLOTS: dict[Attribute, frozenset[str]] = {
    "origin": frozenset({"name", "first_name"}),
    "gender": frozenset({"name", "first_name"}),
    "age": frozenset({"age"}),
    "nationality": frozenset({"nationality"}),
}
PRONOUN_WORDS = ("she", "he", "her", "him", "his", "hers", "herself", "himself")
"""Masked in both outputs of a gender pair: a reply that says 'her' to one and 'him' to the other agrees."""


class ProbeFileError(ValueError):
    """The probe file cannot be used; the message names the file and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Locale(_Strict):
    locale: str = Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")
    label: str
    romanized: bool = False
    """Use Faker's romanised names (ja_JP): prompts are English, so a name written in Latin script."""


class Origins(_Strict):
    reference: str
    locales: list[Locale] = Field(min_length=2)

    @model_validator(mode="after")
    def _reference_is_listed(self) -> Origins:
        if self.reference not in {loc.locale for loc in self.locales}:
            raise ValueError(f"origins.reference {self.reference!r} is not one of origins.locales")
        return self


class Pronouns(_Strict):
    subject: str
    object: str
    possessive: str


class Genders(_Strict):
    female: Pronouns
    male: Pronouns


class AgeGroup(_Strict):
    label: str
    min: int = Field(ge=16, le=110)
    max: int = Field(ge=16, le=110)


class Ages(_Strict):
    reference: AgeGroup
    others: list[AgeGroup] = Field(min_length=1)


class Nationalities(_Strict):
    reference: str
    others: list[str] = Field(min_length=1)


class Template(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    domain: str
    text: str = Field(min_length=10, max_length=1000)
    neutral: str | None = None

    @property
    def slots(self) -> frozenset[str]:
        return frozenset(name for _, name, _, _ in string.Formatter().parse(self.text) if name)

    @model_validator(mode="after")
    def _known_slots(self) -> Template:
        unknown = sorted(self.slots - SLOTS)
        if unknown:
            raise ValueError(f"template {self.id!r} has unknown slot(s) {', '.join(unknown)}")
        return self


class ProbeFile(_Strict):
    version: str
    neutral: str = Field(min_length=1)
    origins: Origins
    genders: Genders
    ages: Ages
    nationalities: Nationalities
    templates: list[Template] = Field(min_length=1)


def load_probe_file(path: Path) -> ProbeFile:
    return load_yaml_model(path, ProbeFile, "bias probes", ProbeFileError)


@dataclass(frozen=True)
class ProbePair:
    attribute: Attribute
    group: str
    """The second prompt's group (the first is the reference group; for gender, female then male)."""
    template: str
    texts: tuple[str, str]
    varied: tuple[str, ...]
    """Every value that differs between the two prompts: masked in both outputs before comparing them."""
    neutral: str


@dataclass
class _Person:
    first: str
    last: str
    gender: Literal["female", "male"]

    @property
    def full(self) -> str:
        return f"{self.first} {self.last}"


class _Names:
    """Seeded Faker, one generator per locale (Faker is imported here only: the suite needs it, the rest of
    the evaluator does not)."""

    def __init__(self, probes: ProbeFile, seed: int) -> None:
        from faker import Faker

        self._locales = {loc.locale: loc for loc in probes.origins.locales}
        self._faker = Faker(list(self._locales))
        self._faker.seed_instance(seed)

    def first(self, locale: str, gender: Literal["female", "male"]) -> str:
        fake = self._faker[locale]
        if self._locales[locale].romanized:
            return str(getattr(fake, f"first_romanized_name_{gender}")())
        return str(getattr(fake, f"first_name_{gender}")())

    def last(self, locale: str) -> str:
        fake = self._faker[locale]
        return str(fake.last_romanized_name() if self._locales[locale].romanized else fake.last_name())

    def person(self, locale: str, gender: Literal["female", "male"]) -> _Person:
        return _Person(self.first(locale, gender), self.last(locale), gender)


def faker_version() -> str:
    from importlib.metadata import version

    return version("faker")


def _slots(person: _Person, probes: ProbeFile, age: int, nationality: str) -> dict[str, str]:
    pronouns = getattr(probes.genders, person.gender)
    return {"name": person.full, "first_name": person.first, "subject": pronouns.subject,
            "object": pronouns.object, "possessive": pronouns.possessive, "age": str(age),
            "nationality": nationality}


def _name_parts(*people: _Person) -> tuple[str, ...]:
    return tuple(value for p in people for value in (p.full, p.first, p.last))


def generate_pairs(probes: ProbeFile, attributes: list[Attribute], pairs_per_attribute: int,
                   seed: int) -> list[ProbePair]:
    """`pairs_per_attribute` pairs for each attribute: templates that carry the attribute's slot taken in a
    seeded round-robin (every template used before any repeats), the second group rotating through the
    non-reference groups; the rest of each pair's context (the other slots) drawn at random and shared by
    both prompts."""
    rng = random.Random(f"bias-probes|{seed}|{probes.version}")
    names = _Names(probes, seed)
    locales = [loc.locale for loc in probes.origins.locales]
    other_locales = [loc for loc in locales if loc != probes.origins.reference]
    all_ages = [probes.ages.reference, *probes.ages.others]
    all_nationalities = [probes.nationalities.reference, *probes.nationalities.others]
    pairs: list[ProbePair] = []
    for attribute in attributes:
        eligible = [t for t in probes.templates if t.slots & ATTRIBUTE_SLOTS[attribute]]
        if not eligible:
            slots = " or ".join(f"{{{s}}}" for s in sorted(ATTRIBUTE_SLOTS[attribute]))
            raise ProbeFileError(f"bias probes {probes.version}: no template has a slot for {attribute} ({slots})")
        rng.shuffle(eligible)
        for index in range(pairs_per_attribute):
            template = eligible[index % len(eligible)]
            gender: Literal["female", "male"] = rng.choice(("female", "male"))
            person = names.person(rng.choice(locales), gender)
            group = rng.choice(all_ages)
            age = rng.randint(group.min, group.max)
            nationality = rng.choice(all_nationalities)
            context = _slots(person, probes, age, nationality)
            if attribute == "origin":
                locale = other_locales[index % len(other_locales)]
                first = names.person(probes.origins.reference, gender)
                second = names.person(locale, gender)
                while second.full == first.full:
                    second = names.person(locale, gender)
                a, b = _slots(first, probes, age, nationality), _slots(second, probes, age, nationality)
                varied, label = _name_parts(first, second), locale
            elif attribute == "gender":
                locale = rng.choice(locales)
                last = names.last(locale)
                first = _Person(names.first(locale, "female"), last, "female")
                second = _Person(names.first(locale, "male"), last, "male")
                a, b = _slots(first, probes, age, nationality), _slots(second, probes, age, nationality)
                varied, label = (*_name_parts(first, second), *PRONOUN_WORDS), "female/male"
            elif attribute == "age":
                other = probes.ages.others[index % len(probes.ages.others)]
                young = rng.randint(probes.ages.reference.min, probes.ages.reference.max)
                old = rng.randint(other.min, other.max)
                a, b = {**context, "age": str(young)}, {**context, "age": str(old)}
                varied, label = (str(young), str(old)), other.label
            else:
                other_nationality = probes.nationalities.others[index % len(probes.nationalities.others)]
                a = {**context, "nationality": probes.nationalities.reference}
                b = {**context, "nationality": other_nationality}
                varied, label = (probes.nationalities.reference, other_nationality), other_nationality
            pairs.append(ProbePair(
                attribute=attribute, group=label, template=template.id,
                texts=(template.text.format_map(a), template.text.format_map(b)),
                varied=varied, neutral=template.neutral or probes.neutral,
            ))
    return pairs
