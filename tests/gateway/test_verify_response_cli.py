"""`tunegate verify-response` on response files signed with the gateway's key from the key store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from services.cli.main import app
from services.gateway.adapters.provenance_keys import provenance_signer
from services.gateway.domain.provenance import ProvenanceSigner, response_sha256
from shared.models.bases import BaseModelInfo
from shared.security.keys import public_key_pem

runner = CliRunner()
TEXT = "Order 4711: two lamps, yellow. Contact: <EMAIL_ADDRESS>."
EVENT = "0192f0c4-7b1e-7a3c-9d2e-4f5a6b7c8d9e"
VERSION = "order-extract.v2"


def chat_body(signer: ProvenanceSigner, text: str = TEXT, *, signed_text: str | None = None) -> dict[str, Any]:
    _, provenance = signer.sign(VERSION, response_sha256(text if signed_text is None else signed_text), EVENT)
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": VERSION,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
        "tunegate": {"ai_generated": True, "provenance": provenance},
    }


@pytest.fixture
def signer(tunegate_home: Path) -> ProvenanceSigner:
    """The gateway's signer from the key store under TUNEGATE_HOME (what the CLI finds by default)."""
    return provenance_signer(tunegate_home / "keys")


def write(tmp_path: Path, name: str, body: dict[str, Any] | str) -> Path:
    path = tmp_path / name
    path.write_text(body if isinstance(body, str) else json.dumps(body), encoding="utf-8")
    return path


def test_signed_chat_response_verifies(tmp_path: Path, signer: ProvenanceSigner) -> None:
    result = runner.invoke(app, ["verify-response", "--response", str(write(tmp_path, "r.json", chat_body(signer)))])
    assert result.exit_code == 0, result.output
    assert f"signed by gateway key {signer.key_id}" in result.output
    assert VERSION in result.output and EVENT in result.output


def test_completion_response_and_json_output(tmp_path: Path, signer: ProvenanceSigner) -> None:
    body = chat_body(signer)
    body["object"] = "text_completion"
    body["choices"] = [{"index": 0, "text": TEXT, "finish_reason": "stop"}]
    result = runner.invoke(app, ["verify-response", "--json", "--response", str(write(tmp_path, "r.json", body))])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["signature"] == "verified"
    assert report["provenance"] == {
        "key_id": signer.key_id, "model_version": VERSION, "response_sha256": response_sha256(TEXT), "event_id": EVENT,
    }


def test_tampered_text_fails_with_the_reason(tmp_path: Path, signer: ProvenanceSigner) -> None:
    body = chat_body(signer, TEXT.replace("two", "ten"), signed_text=TEXT)
    path = write(tmp_path, "r.json", body)
    result = runner.invoke(app, ["verify-response", "--response", str(path)])
    assert result.exit_code == 1
    assert "text_mismatch" in result.output and "the text was altered" in result.output
    report = json.loads(runner.invoke(app, ["verify-response", "--json", "--response", str(path)]).stdout)
    assert report["ok"] is False and report["error"]["kind"] == "text_mismatch"


def test_a_second_content_key_is_refused_not_verified(tmp_path: Path, signer: ProvenanceSigner) -> None:
    """json.loads keeps the last of two keys, other readers the first: 'EVIL TEXT' placed before the signed
    content verified as OK while a viewer showed it."""
    genuine = json.dumps(chat_body(signer))
    forged = genuine.replace('"content": ', '"content": "EVIL TEXT", "content": ', 1)
    result = runner.invoke(app, ["verify-response", "--response", str(write(tmp_path, "r.json", forged))])
    assert result.exit_code != 0 and "names the key 'content' twice" in result.output


def test_the_text_must_be_where_the_bodys_kind_puts_it(tmp_path: Path, signer: ProvenanceSigner) -> None:
    """A chat body with a null message.content and the signed text in choices[0].text verified, while a chat
    client showed nothing; a completion body with a message beside its text likewise."""
    chat = chat_body(signer)
    chat["choices"][0]["message"]["content"] = None
    chat["choices"][0]["text"] = TEXT
    completion = chat_body(signer)
    completion["object"] = "text_completion"
    completion["choices"][0]["text"] = TEXT
    completion["choices"][0]["message"]["content"] = "something else"
    for name, body in (("chat.json", chat), ("completion.json", completion)):
        result = runner.invoke(app, ["verify-response", "--response", str(write(tmp_path, name, body))])
        assert result.exit_code != 0 and "choices[0]" in result.output, (name, result.output)


def test_tampered_version_fails_on_the_signature(tmp_path: Path, signer: ProvenanceSigner) -> None:
    body = chat_body(signer)
    body["tunegate"]["provenance"]["version"] = "order-extract.v3"
    result = runner.invoke(app, ["verify-response", "--response", str(write(tmp_path, "r.json", body))])
    assert result.exit_code == 1
    assert "bad_signature" in result.output


def test_response_signed_by_an_unknown_key_fails(tmp_path: Path, tunegate_home: Path) -> None:
    stranger = ProvenanceSigner(Ed25519PrivateKey.generate())
    provenance_signer(tunegate_home / "keys")  # the real gateway key exists, but is not the one that signed
    result = runner.invoke(app, ["verify-response", "--response", str(write(tmp_path, "r.json", chat_body(stranger)))])
    assert result.exit_code == 1
    assert "wrong_key" in result.output and f"key {stranger.key_id} is not a trusted gateway key" in result.output


def test_header_and_text_with_an_explicit_public_key(tmp_path: Path, tunegate_home: Path) -> None:
    key = Ed25519PrivateKey.generate()
    header = ProvenanceSigner(key).header(VERSION, response_sha256(TEXT), EVENT)
    text = write(tmp_path, "answer.txt", TEXT)
    pub = write(tmp_path, "gateway.pub", public_key_pem(key.public_key()))
    ok = runner.invoke(app, ["verify-response", "--header", header, "--text", str(text), "--public-key", str(pub)])
    assert ok.exit_code == 0, ok.output
    # An editor's trailing newline changes the hash; the error says so.
    newline = write(tmp_path, "answer-nl.txt", TEXT + "\n")
    bad = runner.invoke(app, ["verify-response", "--header", header, "--text", str(newline), "--public-key", str(pub)])
    assert bad.exit_code == 1 and "ends with a newline" in bad.output


def test_malformed_provenance_and_usage_errors(tmp_path: Path, signer: ProvenanceSigner) -> None:
    text = write(tmp_path, "answer.txt", TEXT)
    malformed = runner.invoke(app, ["verify-response", "--header", "v=1; sig=zz", "--text", str(text)])
    assert malformed.exit_code == 1 and "malformed" in malformed.output
    no_meta = write(tmp_path, "plain.json", {"choices": [{"message": {"content": TEXT}}]})
    missing = runner.invoke(app, ["verify-response", "--response", str(no_meta)])
    assert missing.exit_code == 1 and "no tunegate.provenance" in missing.output
    not_json = runner.invoke(app, ["verify-response", "--response", str(write(tmp_path, "x.json", "{nope"))])
    assert not_json.exit_code == 1 and "not JSON" in not_json.output
    # Usage errors: exit 2 with what to do.
    assert runner.invoke(app, ["verify-response"]).exit_code == 2
    header_only = runner.invoke(app, ["verify-response", "--header", "v=1"])
    assert header_only.exit_code == 2 and "--header needs --text" in header_only.output
    gone = runner.invoke(app, ["verify-response", "--response", str(tmp_path / "gone.json")])
    assert gone.exit_code == 2 and "not found" in gone.output
    no_base = runner.invoke(app, ["verify-response", "--text", str(text), "--watermark"])
    assert no_base.exit_code == 2 and "--base" in no_base.output


def generate(base: BaseModelInfo, *, watermark_key: int | None, seed: int) -> str:
    """About 400 sampled tokens from `tiny`: long enough that one text carries a z-score far above 4."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from services.gateway.adapters.watermark import watermark_config

    tokenizer = AutoTokenizer.from_pretrained(str(base.path))
    model = AutoModelForCausalLM.from_pretrained(str(base.path)).eval()
    inputs = tokenizer("The order", return_tensors="pt")
    torch.manual_seed(seed)
    with torch.no_grad():
        output = model.generate(
            **inputs, do_sample=True, max_new_tokens=400, min_new_tokens=400,
            watermarking_config=watermark_config(watermark_key) if watermark_key else None,
        )
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def test_watermark_is_reported_with_the_signature(
    tmp_path: Path, signer: ProvenanceSigner, tiny_base: BaseModelInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEGATE_GATEWAY_WATERMARK_KEY", "424242")  # the gateway's key, read by the CLI
    marked = generate(tiny_base, watermark_key=424242, seed=5)
    path = write(tmp_path, "r.json", chat_body(signer, marked))
    base = ["--base", str(tiny_base.path)]  # a base directory works as well as a catalogue name
    result = runner.invoke(app, ["verify-response", "--json", "--response", str(path), *base])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["signature"] == "verified"
    assert report["watermark"]["detected"] is True and report["watermark"]["z_score"] > 4
    assert report["watermark"]["p_value"] < 1e-4
    # Text from the same model without the watermark: reported, and the check fails.
    plain = write(tmp_path, "plain.txt", generate(tiny_base, watermark_key=None, seed=5))
    unmarked = runner.invoke(app, ["verify-response", "--json", "--text", str(plain), *base])
    assert unmarked.exit_code == 1
    assert json.loads(unmarked.stdout)["error"]["kind"] == "no_watermark"
