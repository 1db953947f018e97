"""The detector benchmark: a labelled corpus (seeded Faker) and precision/recall per entity.

Planted values are syntactically valid (Luhn, IBAN and NHS checksums, numbering-plan-valid phones, real
JWT structure, base58check wallets) and appear in varied contexts and formats, among distractors that
look like them (dates, prices, versions, order numbers, 'token ring', 'gate E11'). Tests generate it with
one seed and the bench with another, so a recognizer that only fits one corpus shows up on the other."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import phonenumbers
from faker import Faker

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class Planted:
    entity: str
    start: int
    end: int


@dataclass(slots=True)
class LabelledText:
    text: str
    planted: list[Planted] = field(default_factory=list)


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR", "nl_NL"])
        self.fake.seed_instance(seed)

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    # ------------------------------------------------------------ values
    def email(self) -> str:
        return self.rng.choice(
            [
                self.fake["en_US"].email,
                self.fake["en_US"].company_email,
                self.fake["de_DE"].free_email,
                self.fake["fr_FR"].email,
            ]
        )()

    def phone(self) -> str:
        while True:
            kind = self.rng.randrange(5)
            area = self.rng.choice(["212", "415", "617", "312", "206", "303", "512", "404", "718", "646"])
            exch, line = f"{self.rng.randint(200, 999)}", f"{self.rng.randint(0, 9999):04d}"
            if kind == 0:
                number, region = f"({area}) {exch}-{line}", "US"
            elif kind == 1:
                number, region = f"{area}-{exch}-{line}", "US"
            elif kind == 2:
                number, region = f"+1 {area} {exch} {line}", "US"
            elif kind == 3:
                number, region = f"+44 20 7{self.rng.randint(100, 999)} {self.rng.randint(1000, 9999)}", "GB"
            else:
                number, region = f"+49 30 {self.rng.randint(1000000, 9999999)}", "DE"
            parsed = phonenumbers.parse(number, region)
            if phonenumbers.is_valid_number(parsed):
                return number

    def credit_card(self) -> str:
        kind = self.rng.choice(["visa16", "mastercard", "amex", "discover"])
        number = self.fake["en_US"].credit_card_number(card_type=kind)
        style = self.rng.randrange(3)
        if style == 0:
            return number
        sep = " " if style == 1 else "-"
        groups = [4, 6, 5] if len(number) == 15 else [4, 4, 4, 4]
        out, i = [], 0
        for g in groups:
            out.append(number[i : i + g])
            i += g
        return sep.join(out)

    def iban(self) -> str:
        value = self.fake[self.rng.choice(["en_GB", "de_DE", "fr_FR", "nl_NL"])].iban()
        if self.rng.random() < 0.5:
            return " ".join(value[i : i + 4] for i in range(0, len(value), 4))
        return value

    def ssn(self) -> str:
        while True:
            value = self.fake["en_US"].ssn()
            if value.replace("-", "") not in ("123456789", "987654321") and len(set(value.replace("-", ""))) > 2:
                break
        return value.replace("-", " ") if self.rng.random() < 0.3 else value

    def ip(self) -> str:
        return self.fake["en_US"].ipv6() if self.rng.random() < 0.2 else self.fake["en_US"].ipv4_public()

    def crypto(self) -> str:
        payload = b"\x00" + self.rng.randbytes(20)
        data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
        num = int.from_bytes(data, "big")
        out = ""
        while num:
            num, rem = divmod(num, 58)
            out = B58[rem] + out
        return "1" * (len(data) - len(data.lstrip(b"\x00"))) + out

    def aws_key(self) -> str:
        return self.rng.choice(["AKIA", "ASIA"]) + self.chars(string.ascii_uppercase + "234567", 16)

    def github_token(self) -> str:
        if self.rng.random() < 0.7:
            return self.rng.choice(["ghp_", "gho_", "ghs_"]) + self.chars(string.ascii_letters + string.digits, 36)
        return (
            "github_pat_"
            + self.chars(string.ascii_letters + string.digits, 22)
            + "_"
            + self.chars(string.ascii_letters + string.digits, 59)
        )

    def gitlab_token(self) -> str:
        return "glpat-" + self.chars(string.ascii_letters + string.digits + "_-", 20)

    def slack_token(self) -> str:
        return (
            f"xox{self.rng.choice('bpa')}-{self.rng.randint(10**10, 10**12)}-{self.rng.randint(10**10, 10**12)}-"
            + self.chars(string.ascii_letters + string.digits, 24)
        )

    def api_key(self) -> str:
        prefix = self.rng.choice(["sk-", "sk-proj-", "sk-ant-api03-"])
        return prefix + self.chars(string.ascii_letters + string.digits, self.rng.choice([32, 48]))

    def jwt(self) -> str:
        def b64(obj: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

        header = b64({"alg": self.rng.choice(["HS256", "RS256"]), "typ": "JWT"})
        body = b64(
            {
                "sub": str(self.rng.randint(1, 10**9)),
                "name": self.fake["en_US"].name(),
                "iat": self.rng.randint(1_500_000_000, 1_800_000_000),
            }
        )
        return f"{header}.{body}." + self.chars(string.ascii_letters + string.digits + "-_", 43)

    def private_key(self) -> str:
        kind = self.rng.choice(["RSA ", "EC ", "OPENSSH ", ""])
        body = "\n".join(base64.b64encode(self.rng.randbytes(48)).decode() for _ in range(self.rng.randint(2, 5)))
        return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"

    def secret_value(self) -> str:
        alphabet = string.ascii_letters + string.digits
        value = self.chars(alphabet, self.rng.randint(16, 32))
        return value if any(c.isdigit() for c in value) else value[:-1] + "7"

    def mrn(self) -> str:
        digits = self.rng.choice([7, 8])
        return self.rng.choice(["", "", "MR", "PT-"]) + f"{self.rng.randint(10**5, 10**8 - 1):0{digits}d}"

    def icd10(self) -> str:
        return self.rng.choice(
            [
                "E11.9",
                "I10",
                "J45.909",
                "F32.9",
                "M54.5",
                "K21.9",
                "N39.0",
                "R51.9",
                "Z00.00",
                "C50.911",
                "S72.001A",
                "G43.909",
                "E78.5",
                "J18.9",
                "F41.1",
            ]
        )

    def nhs(self) -> str:
        while True:
            digits = [self.rng.randint(0, 9) for _ in range(9)]
            check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
            check = 0 if check == 11 else check
            if check != 10:
                break
        value = "".join(map(str, digits)) + str(check)
        style = self.rng.randrange(3)
        if style == 0:
            return value
        sep = " " if style == 1 else "-"
        return f"{value[:3]}{sep}{value[3:6]}{sep}{value[6:]}"


# entity -> (value generator name, context templates); {} is where the value goes.
TEMPLATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "EMAIL_ADDRESS": (
        "email",
        ("reach me at {}", "Email: {}", "send it to <{}> please", "cc {}, thanks", "contact ({}) for details"),
    ),
    "PHONE_NUMBER": (
        "phone",
        ("call me on {}", "Tel: {}", "my number is {} after 5pm", "phone {}.", "reach the desk at {}"),
    ),
    "CREDIT_CARD": ("credit_card", ("card number {}", "paid with {} yesterday", "CC: {}", "charge {} please")),
    "IBAN_CODE": ("iban", ("IBAN {}", "transfer to {} by Friday", "account: {}", "bank details {}")),
    "US_SSN": ("ssn", ("SSN {}", "social security number {}", "my ssn is {}", "SSN: {}.")),
    "IP_ADDRESS": ("ip", ("login from {}", "server at {} is down", "IP: {}", "blocked {} at the firewall")),
    "CRYPTO": ("crypto", ("send BTC to {}", "wallet {}", "bitcoin address: {}", "pay {} now")),
    "AWS_ACCESS_KEY": ("aws_key", ("aws_access_key_id={}", "key {} leaked", "AWS key: {}", "export KEY={}")),
    "GITHUB_TOKEN": ("github_token", ("GITHUB_TOKEN={}", "use {} to push", "gh token: {}", "git clone with {}")),
    "GITLAB_TOKEN": ("gitlab_token", ("GITLAB_TOKEN={}", "PAT {} for CI", "gitlab: {}")),
    "SLACK_TOKEN": ("slack_token", ("SLACK_BOT_TOKEN={}", "slack bot uses {}", "xoxb token {} in config")),
    "API_KEY": ("api_key", ("OPENAI_API_KEY={}", "api key {}", "use {} for the model", "key: {}")),
    "JWT": ("jwt", ("Authorization: Bearer {}", "session {}", "jwt={}", "cookie token {}")),
    "PRIVATE_KEY": ("private_key", ("here is the key:\n{}", "{}", "id_rsa contents {}")),
    "SECRET": (
        "secret_value",
        (
            "password: {}",
            "db_password={}",
            '"client_secret": "{}"',
            "the api token is {}",
            "passphrase = {}",
            "secret={}",
        ),
    ),
    "MEDICAL_RECORD_NUMBER": (
        "mrn",
        ("MRN: {}", "MRN {}", "medical record number {}", "patient id {}", "Medical record no. {}"),
    ),
    "ICD10_CODE": (
        "icd10",
        ("diagnosed with {}", "ICD-10: {}", "dx {} confirmed", "history of {} noted", "diagnosis code {}"),
    ),
    "UK_NHS": ("nhs", ("NHS number {}", "NHS no: {}", "nhs# {}", "her NHS number is {}")),
}
ENTITIES: tuple[str, ...] = tuple(TEMPLATES)

DISTRACTORS: tuple[Callable[[random.Random], str], ...] = (
    lambda r: f"order #{r.randint(10000, 999999)}",
    lambda r: f"on {r.randint(2019, 2026)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    lambda r: f"it costs ${r.randint(1, 9)},{r.randint(100, 999)}.{r.randint(10, 99)}",
    lambda r: f"upgrade to v{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 9)}",
    lambda r: f"meet at {r.randint(8, 18)}:{r.choice(['00', '15', '30', '45'])} in room {r.randint(100, 999)}",
    lambda r: "the token ring network was replaced",
    lambda r: "reset your password via the portal",
    lambda r: f"go to gate E{r.randint(10, 40)} for boarding",
    lambda r: "we use sk-learn style pipelines",
    lambda r: f"{r.randint(2, 95)}% of the patients improved",
    lambda r: "the secret to good coffee is patience",
    lambda r: f"ticket ABC-{r.randint(100, 9999)} is closed",
)


def generate_corpus(n: int, *, seed: int, plant_rate: float = 0.8, max_plants: int = 2) -> list[LabelledText]:
    """n texts; each plants 1..max_plants entities with probability plant_rate, cycling entity types."""
    gen = _Gen(seed)
    rng = gen.rng
    corpus: list[LabelledText] = []
    cycle = 0
    for _ in range(n):
        parts: list[tuple[str, str | None]] = [(gen.fake["en_US"].sentence(), None)]
        if rng.random() < plant_rate:
            for _ in range(rng.randint(1, max_plants)):
                entity = ENTITIES[cycle % len(ENTITIES)]
                cycle += 1
                value_name, templates = TEMPLATES[entity]
                template = rng.choice(templates)
                value = getattr(gen, value_name)()
                before, after = template.split("{}")
                parts.append((before, None))
                parts.append((value, entity))
                parts.append((after, None))
                parts.append((gen.fake["en_US"].sentence(), None))
        if rng.random() < 0.5:
            parts.append((rng.choice(DISTRACTORS)(rng) + ".", None))
        text, planted = "", []
        for i, (chunk, entity) in enumerate(parts):
            glue = i and entity is None and chunk and not chunk[0].isspace() and chunk[0] not in '.,)"'
            if glue and not text.endswith(("\n", " ", "<", "(", '"', "=")):
                text += " "
            if entity is not None:
                planted.append(Planted(entity, len(text), len(text) + len(chunk)))
            text += chunk
        corpus.append(LabelledText(text, planted))
    return corpus


@dataclass
class EntityScore:
    entity: str
    planted: int = 0
    found: int = 0  # planted spans hit by a detection of the same entity
    detections: int = 0
    correct: int = 0  # detections overlapping a planted span of the same entity

    @property
    def recall(self) -> float:
        return self.found / self.planted if self.planted else 1.0

    @property
    def precision(self) -> float:
        return self.correct / self.detections if self.detections else 1.0


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def score(
    corpus: Iterable[LabelledText], detections: Iterable[Iterable[tuple[str, int, int]]]
) -> dict[str, EntityScore]:
    """Per-entity precision and recall of (entity, start, end) detections against the planted spans."""
    scores: dict[str, EntityScore] = {e: EntityScore(e) for e in ENTITIES}
    for item, found in zip(corpus, detections, strict=True):
        found = list(found)
        for plant in item.planted:
            entry = scores.setdefault(plant.entity, EntityScore(plant.entity))  # other corpora plant other types
            entry.planted += 1
            if any(e == plant.entity and _overlaps(s, t, plant.start, plant.end) for e, s, t in found):
                entry.found += 1
        for entity, start, end in found:
            entry = scores.setdefault(entity, EntityScore(entity))
            entry.detections += 1
            if any(p.entity == entity and _overlaps(start, end, p.start, p.end) for p in item.planted):
                entry.correct += 1
    return scores


def format_scores(scores: dict[str, EntityScore]) -> str:
    lines = [f"{'entity':24} {'planted':>7} {'recall':>7} {'detect':>7} {'precision':>9}"]
    for entry in scores.values():
        lines.append(
            f"{entry.entity:24} {entry.planted:7d} {entry.recall:7.3f} {entry.detections:7d} {entry.precision:9.3f}"
        )
    return "\n".join(lines)


def totals(scores: dict[str, EntityScore]) -> Counter[str]:
    out: Counter[str] = Counter()
    for entry in scores.values():
        out["planted"] += entry.planted
        out["found"] += entry.found
    return out
