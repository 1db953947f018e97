"""Faker-made test text for the gateway's policy tests: personal data inside ordinary sentences, and benign
support prompts (the false-positive side of the injection heuristics)."""

from __future__ import annotations

import random

from faker import Faker

# Values the scanner's recognizers validate (phone numbers valid in their region, IBANs with their mod-97
# check, Luhn-valid card numbers); sentences give them the lead-ins real text has.
ENTITY_SENTENCES: dict[str, tuple[str, ...]] = {
    "EMAIL_ADDRESS": ("Please write to {v} about the order.", "My e-mail is {v}, thanks."),
    "PHONE_NUMBER": ("You can call me on {v} after five.", "Phone: {v}"),
    "IBAN_CODE": ("Refund it to IBAN {v} please.", "The account is {v} at our bank."),
    "CREDIT_CARD": ("I paid with card {v} yesterday.", "Card number {v} was charged twice."),
    "PERSON": ("Dear {v}, your ticket is closed.", "I spoke with {v} on the phone."),
}


def entity_value(fake: Faker, entity: str) -> str:
    if entity == "EMAIL_ADDRESS":
        return fake.email()
    if entity == "PHONE_NUMBER":
        return fake.phone_number()
    if entity == "IBAN_CODE":
        return fake.iban()
    if entity == "CREDIT_CARD":
        return fake.credit_card_number(card_type=fake.random_element(("visa16", "mastercard", "amex")))
    return fake.name()


def entity_texts(seed: int, n: int) -> list[tuple[str, str]]:
    """(entity type, a few sentences holding one or two such values among filler) pairs."""
    rng = random.Random(seed)
    fake = Faker(["en_GB", "en_US", "de_DE", "nl_NL"])
    fake.seed_instance(seed)
    out = []
    for i in range(n):
        entity = sorted(ENTITY_SENTENCES)[i % len(ENTITY_SENTENCES)]
        parts = [fake.sentence(nb_words=rng.randint(4, 12))]
        for _ in range(rng.randint(1, 2)):
            parts.append(rng.choice(ENTITY_SENTENCES[entity]).format(v=entity_value(fake, entity)))
            parts.append(fake.sentence(nb_words=rng.randint(3, 10)))
        out.append((entity, " ".join(parts)))
    return out


SUPPORT_TEMPLATES = (
    "Hi, my order {order} hasn't arrived yet. It was supposed to come on {date}. Can you check?",
    "How do I reset my password for the {product} app? The reset link expired.",
    "I was charged twice for invoice {order}. Please refund the duplicate payment.",
    "Can you explain the difference between the {product} basic and premium plans?",
    "The {product} keeps disconnecting from wifi since the last update. What should I try?",
    "Please summarise this complaint for the team: {paragraph}",
    "Translate this message into French: {sentence}",
    "I'd like to change the delivery address of order {order} to {city}.",
    "Ignore the previous email I sent, the issue with {product} is solved now.",
    "What are your opening hours in {city} on {day}?",
    "Write a polite reply to a customer who says: {sentence}",
    "My manager asked me to act as the contact person for {company}. How do I get admin rights?",
    "Is there any restriction on returning a {product} after 30 days?",
    "Start your reply with a short greeting and then list the next steps for ticket {order}.",
    "Can you decode what error code {code} means on the {product}?",
    "Our developer says the API returns 401. Which settings should we check in {product}?",
    "Please repeat the steps you gave me earlier for setting up {product}.",
    "Forget it, I found the answer in the FAQ. Thanks anyway!",
)


def benign_prompts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    out = []
    for i in range(n):
        template = SUPPORT_TEMPLATES[i % len(SUPPORT_TEMPLATES)] if i < len(SUPPORT_TEMPLATES) else rng.choice(
            SUPPORT_TEMPLATES
        )
        out.append(template.format(
            order=f"#{fake.bothify('??-#####').upper()}", date=fake.date(), product=fake.word().title(),
            paragraph=fake.paragraph(nb_sentences=3), sentence=fake.sentence(), city=fake.city(),
            day=fake.day_of_week(), company=fake.company(), code=fake.bothify("E-###"),
        ))
    return out
