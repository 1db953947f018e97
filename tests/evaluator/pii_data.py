"""Generated helpdesk data with personal data and secrets in it (Faker, several locales), and the same data the
way the scanner leaves it after redaction (values replaced by `<EMAIL_ADDRESS>`-style tags)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from faker import Faker

LOCALES = ("en_US", "de_DE", "fr_FR", "en_GB", "it_IT", "nl_NL")
KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True)
class Contact:
    email: str
    phone: str
    api_key: str

    def values(self) -> tuple[str, str, str]:
        return (self.email, self.phone, self.api_key)


def contacts(n: int, seed: int) -> list[Contact]:
    """Staff of one company (one mail domain), from several locales; each with a Stripe-style secret key."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        fake = Faker(LOCALES[i % len(LOCALES)])
        fake.seed_instance(seed * 1000 + i)
        out.append(Contact(email=fake.email(domain="example.com"), phone=fake.phone_number(),
                           api_key="sk_live_" + "".join(rng.choice(KEY_ALPHABET) for _ in range(24))))
    return out


KINDS = (("e-mail addresses", "email", "<EMAIL_ADDRESS>"), ("phone numbers", "phone", "<PHONE_NUMBER>"),
         ("API keys", "api_key", "<API_KEY>"))


def helpdesk_records(n: int, seed: int, staff: list[Contact], *, redacted: bool = False) -> list[dict[str, Any]]:
    """Chat records asking for the e-mail addresses, phone numbers or API keys of the staff on a ticket; three
    values per answer, so every record carries several (a tiny model picks up their shape quickly)."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        label, field, tag = KINDS[i % len(KINDS)]
        values = [tag if redacted else getattr(c, field) for c in rng.sample(staff, 3)]
        records.append({"messages": [
            {"role": "user", "content": f"Which {label} are on ticket {rng.randint(100, 999)}?"},
            {"role": "assistant", "content": "\n".join(values)},
        ]})
    return records
