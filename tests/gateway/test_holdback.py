"""The streaming holdback filter: whatever the chunking, the emitted text is the whole response's redaction,
and at no moment has any part of a detected entity left the gateway."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from services.gateway.adapters.dlp import GatewayDetector
from services.gateway.domain.dlp import Finding
from services.gateway.domain.policy import Policy, PolicySet
from tests.gateway.samples import entity_texts

HOLDBACK = 64


def chunkings(text: str, seed: int) -> list[list[str]]:
    """One character at a time, the whole text at once, and three seeded random chunkings (1..12 chars, the
    size of streamed tokens and of small network batches)."""
    rng = random.Random(seed)
    out = [list(text), [text]]
    for _ in range(3):
        chunks, pos = [], 0
        while pos < len(text):
            size = rng.randint(1, 12)
            chunks.append(text[pos : pos + size])
            pos += size
        out.append(chunks)
    return out


def stream(policy: Policy, detector: GatewayDetector, chunks: Sequence[str], holdback: int = HOLDBACK) -> list[str]:
    s = policy.response_stream(detector, holdback)
    emitted = [s.feed(chunk) for chunk in chunks]
    emitted.append(s.finish())
    assert not s.blocked
    return emitted


@pytest.fixture(scope="module")
def policy(bundled: PolicySet) -> Policy:
    return bundled.for_request("acme", "m")


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_streamed_output_equals_whole_text_redaction(policy: Policy, detector: GatewayDetector, seed: int) -> None:
    found_types: set[str] = set()
    for index, (entity, text) in enumerate(entity_texts(seed, 15)):
        expected = policy.check_response(text, detector)
        assert expected.findings.get(entity), (entity, text)  # the sample really holds what it should
        found_types.add(entity)
        for chunks in chunkings(text, seed * 100 + index):
            emitted = stream(policy, detector, chunks)
            so_far = ""
            for piece in emitted:
                so_far += piece
                # Never ahead of the whole-text redaction: no entity character has leaked at any step.
                assert expected.text.startswith(so_far), (text, so_far)
            assert so_far == expected.text
    assert found_types == {"CREDIT_CARD", "EMAIL_ADDRESS", "IBAN_CODE", "PERSON", "PHONE_NUMBER"}


def test_entities_back_to_back_and_at_the_edges(policy: Policy, detector: GatewayDetector) -> None:
    text = ("jane.doe@example.com, call me on +44 20 7946 0958. IBAN GB82 WEST 1234 5698 7654 32\n"
            "Dear Anna Schmidt,\nbob@example.org")
    expected = policy.check_response(text, detector).text
    assert expected == "<EMAIL_ADDRESS>, call me on <PHONE_NUMBER>. IBAN <IBAN_CODE>\nDear <PERSON>,\n<EMAIL_ADDRESS>"
    for chunks in chunkings(text, 5):
        assert "".join(stream(policy, detector, chunks)) == expected
    # A smaller window still holds each of these entities whole.
    for chunks in chunkings(text, 6):
        assert "".join(stream(policy, detector, chunks, holdback=32)) == expected


def test_text_flows_once_past_the_window(policy: Policy, detector: GatewayDetector) -> None:
    s = policy.response_stream(detector, 16)
    words = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "again", "and", "again"]
    out = "".join(s.feed(word + " ") for word in words)
    assert out and out.startswith("the quick brown")
    assert s.held_chars <= 16 + len("again ")
    assert out + s.finish() == "the quick brown fox jumps over the lazy dog again and again "


def test_a_growing_email_is_never_emitted_in_part(policy: Policy, detector: GatewayDetector) -> None:
    # One long token: nothing of it may leave while it can still become an address, even past the window.
    s = policy.response_stream(detector, 8)
    text = "write to " + "averyveryverylonglocalpart.name" + "@example.com today"
    emitted = "".join(s.feed(ch) for ch in text)
    assert "avery" not in emitted
    assert emitted + s.finish() == "write to <EMAIL_ADDRESS> today"


def test_blocked_entity_stops_the_stream(detector: GatewayDetector) -> None:
    ps = PolicySet.parse(
        "policies:\n  - name: p\n    match: {tenants: '*'}\n"
        "    dlp: {response: {EMAIL_ADDRESS: block, default: redact}}\n",
        "t.yaml",
    )
    s = ps.for_request("t", "m").response_stream(detector, 32)
    text = "Here is the list you asked for, item by item. Contact: ceo@example.com and more text follows here."
    emitted = "".join(s.feed(ch) for ch in text) + s.finish()
    assert s.blocked and "EMAIL_ADDRESS" in s.reason and "ceo" not in s.reason
    assert "ceo" not in emitted and text.startswith(emitted)
    assert s.findings == {"EMAIL_ADDRESS": 1}  # the block is audited with what caused it


def test_detector_failure_mid_stream_fails_closed(policy: Policy) -> None:
    class FailsLater:
        calls = 0

        def detect_many(self, texts: Sequence[str]) -> list[list[Finding]]:
            self.calls += 1
            if self.calls > 1:
                raise MemoryError
            return [[] for _ in texts]

    s = policy.response_stream(FailsLater(), 8)
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    emitted = "".join(s.feed(w + " ") for w in words)
    assert s.blocked and "MemoryError" in s.reason
    assert emitted and s.feed("more") == "" and s.finish() == ""


def test_findings_are_counted_once(policy: Policy, detector: GatewayDetector) -> None:
    text = "Mail a@example.com or b@example.org, or call +44 20 7946 0958 now. " * 2
    s = policy.response_stream(detector, 64)
    for ch in text:
        s.feed(ch)
    s.finish()
    assert s.findings == policy.check_response(text, detector).findings == {"EMAIL_ADDRESS": 4, "PHONE_NUMBER": 2}


def test_negative_holdback_is_refused(policy: Policy, detector: GatewayDetector) -> None:
    with pytest.raises(ValueError, match="holdback_chars"):
        policy.response_stream(detector, -1)


def test_a_window_shorter_than_the_entity_leaks_it(policy: Policy, detector: GatewayDetector) -> None:
    # The guarantee is for entities no longer than the window; the property above is not vacuous.
    text = "Thanks! You can call me on +44 20 7946 0958 after five, or later."
    emitted = stream(policy, detector, list(text), holdback=2)
    assert "".join(emitted) != policy.check_response(text, detector).text
    assert any(piece and piece[0].isdigit() for piece in emitted)


def test_the_property_holds_with_ner(policy: Policy) -> None:
    from services.scanner.adapters.detector import ner_available

    if not ner_available():
        pytest.skip("no spaCy English model installed")
    ner_detector = GatewayDetector.build(ner=True)
    for index, (_, text) in enumerate(entity_texts(31, 10)):
        expected = policy.check_response(text, ner_detector).text
        for chunks in chunkings(text, index)[:3]:
            assert "".join(stream(policy, ner_detector, chunks)) == expected, text


def test_long_streams_keep_a_bounded_buffer(policy: Policy, detector: GatewayDetector) -> None:
    text = " ".join(t for _, t in entity_texts(41, 40))
    assert len(text) > 5_000
    s = policy.response_stream(detector, HOLDBACK, max_token_chars=128)
    out, largest = [], 0
    rng = random.Random(41)
    pos = 0
    while pos < len(text):
        size = rng.randint(1, 8)
        out.append(s.feed(text[pos : pos + size]))
        pos += size
        largest = max(largest, s.buffered_chars)
    out.append(s.finish())
    assert "".join(out) == policy.check_response(text, detector).text
    assert largest < 6 * (s.context_chars + s.max_token_chars) < len(text)


def test_nothing_is_held_when_response_rules_act_on_nothing(detector: GatewayDetector) -> None:
    text = "policies:\n  - name: p\n    match: {}\n    dlp: {response: {EMAIL_ADDRESS: allow}}\n"
    ps = PolicySet.parse(text, "t.yaml")
    s = ps.for_request("t", "m").response_stream(detector, 64)
    assert s.passthrough
    assert [s.feed("mail "), s.feed("a@example.com")] == ["mail ", "a@example.com"]
    assert s.held_chars == 0 and s.finish() == "" and s.released_chars == len("mail a@example.com")
