"""`tunegate verify-response`: check a gateway response's provenance signature, and its text watermark.

Inputs: `--response FILE` (the JSON body the client received: the statement at `tunegate.provenance`, the
text at choices[0].message.content or choices[0].text), or `--header VALUE` (the `x-tunegate-provenance`
header) with `--text FILE` (the text, read as exact UTF-8 bytes). The signature is checked against the
gateway's public keys in the key store (`<keys dir>/trust/gateway/`, Settings().keys_dir, the same store the
gateway signs from) or against `--public-key FILE`.

`--watermark` (or `--base NAME`, which implies it) also runs the watermark detector over the text with the
base's tokenizer and the gateway's watermark key (TUNEGATE_GATEWAY_WATERMARK_KEY or `--watermark-key`);
`--text FILE --base NAME` alone checks only the watermark.

Exit codes: 0 every requested check holds; 1 a check failed (bad, altered or unknown-key signature, text
mismatch, malformed provenance, no watermark detected); 2 usage error (missing file, conflicting options).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.audit.entrypoints.cli_support import read_input, usage_error
from shared.json_input import parse_json

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from services.gateway.adapters.watermark import WatermarkReport
    from services.gateway.domain.provenance import Provenance



def register(app: typer.Typer) -> None:
    app.command("verify-response")(verify_response)


class CheckFailed(Exception):
    """A requested check did not hold: `kind` names it for --json, the message says why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def verify_response(
    response: Annotated[
        Path | None, typer.Option("--response", help="The JSON body the client received from the gateway.")
    ] = None,
    header: Annotated[
        str | None, typer.Option("--header", help="The x-tunegate-provenance header value (use with --text).")
    ] = None,
    text: Annotated[
        Path | None, typer.Option("--text", help="The response text, exact UTF-8 (with --header, or for --base).")
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="The gateway's public key (PEM, raw or hex) instead of the key store."),
    ] = None,
    watermark: Annotated[
        bool, typer.Option("--watermark", help="Also run the watermark detector (needs --base).")
    ] = False,
    base: Annotated[
        str | None, typer.Option("--base", help="Base model whose tokenizer the detector uses; implies --watermark.")
    ] = None,
    watermark_key: Annotated[
        int | None, typer.Option("--watermark-key", min=1, help="Watermark hashing key (default: the gateway's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check a gateway response's signed provenance and, with --base, its text watermark; exit 1 if a check fails.

    The signature is Ed25519 over (model version, response sha256, audit event id) by the gateway's key; the
    text must be the one signed. With --watermark or --base, the detector's z-score and p-value are reported."""
    if response is not None and (header is not None or text is not None):
        usage_error("--response carries both the provenance and the text: do not combine it with --header or --text")
    if header is not None and text is None:
        usage_error("--header needs --text FILE: the text the signature is checked against")
    want_watermark = watermark or base is not None
    if want_watermark and base is None:
        usage_error("--watermark needs --base NAME: the detector uses the base model's tokenizer (e.g. --base tiny)")
    if response is None and header is None and not (text is not None and want_watermark):
        usage_error(
            "nothing to verify: give --response FILE, or --header VALUE --text FILE, or --text FILE --base NAME"
        )

    result: dict[str, Any] = {"ok": True}
    provenance_text = _gather(response, header, text, result)
    try:
        if result.get("statement") is not None:
            _check_signature(result, public_key, provenance_text)
        if want_watermark and result["ok"] and base is not None:
            _check_watermark(result, provenance_text, base, watermark_key)
    except CheckFailed as failure:
        result.update(ok=False, error={"kind": failure.kind, "message": str(failure)})
    _report(result, as_json)
    if not result["ok"]:
        raise typer.Exit(1)


def _gather(response: Path | None, header: str | None, text: Path | None, result: dict[str, Any]) -> str:
    """Read the inputs; the statement (or why it is malformed) goes into `result`, the text is returned."""
    from services.gateway.domain.provenance import (
        MalformedProvenance,
        parse_header,
        response_provenance,
        response_text,
    )

    body_text = ""
    try:
        if response is not None:
            try:
                # Unique keys: a second "content" would verify here and be what another reader shows.
                body = parse_json(read_input(response, "response"), unique_keys=True)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise MalformedProvenance(f"response {response} is not JSON: {exc}") from None
            body_text = response_text(body)
            result["statement"] = response_provenance(body)
        else:
            if text is not None:
                try:
                    body_text = read_input(text, "text").decode("utf-8")
                except UnicodeDecodeError as exc:
                    usage_error(f"text {text} is not UTF-8: {exc}")
            if header is not None:
                result["statement"] = parse_header(header)
    except MalformedProvenance as exc:
        result.update(ok=False, statement=None, error={"kind": "malformed", "message": str(exc)})
    return body_text


def _check_signature(result: dict[str, Any], public_key: Path | None, text: str) -> None:
    from services.gateway.domain.provenance import BadSignature, ProvenanceError, TextMismatch, WrongKey, verify

    statement: Provenance = result["statement"]
    key = _trusted_key(statement, public_key)
    try:
        verify(statement, key, text)
    except TextMismatch as exc:
        hint = ""
        if text.endswith("\n") and _hash(text.rstrip("\n")) == statement.sha256:
            hint = " (the text file ends with a newline the response did not have)"
        raise CheckFailed("text_mismatch", f"{exc}{hint}") from None
    except WrongKey as exc:
        raise CheckFailed("wrong_key", str(exc)) from None
    except BadSignature as exc:
        raise CheckFailed("bad_signature", str(exc)) from None
    except ProvenanceError as exc:
        raise CheckFailed("malformed", str(exc)) from None
    result["signature"] = "verified"


def _trusted_key(statement: Provenance, given: Path | None) -> Ed25519PublicKey:
    from services.gateway.adapters.provenance_keys import trusted_gateway_keys
    from shared.config import Settings
    from shared.security.keys import PublicKeyError, load_public_key

    if given is not None:
        try:
            return load_public_key(read_input(given, "public key"))
        except PublicKeyError as exc:
            usage_error(f"--public-key {given}: {exc}")
    keys_dir = Settings().keys_dir
    trusted = trusted_gateway_keys(keys_dir)
    if statement.key not in trusted:
        known = ", ".join(trusted) or "none"
        raise CheckFailed(
            "wrong_key",
            f"key {statement.key} is not a trusted gateway key in {keys_dir / 'trust' / 'gateway'} (trusted: {known});"
            " pass --public-key with the gateway's public key",
        )
    return trusted[statement.key]


def _check_watermark(result: dict[str, Any], text: str, base: str, key: int | None) -> None:
    from services.gateway.adapters.watermark import WatermarkError, detect_for_base
    from services.gateway.settings import GatewaySettings
    from shared.config import Settings
    from shared.models.bases import BaseModelError, configure_offline, resolve_base

    configure_offline()
    try:
        info = resolve_base(base, Settings())
    except BaseModelError as exc:
        usage_error(str(exc))
    try:
        report: WatermarkReport = detect_for_base(text, info.path, key or GatewaySettings().watermark_key)
    except WatermarkError as exc:
        raise CheckFailed("watermark", str(exc)) from None
    result["watermark"] = {
        "base": base,
        "z_score": round(report.z_score, 4),
        "p_value": report.p_value,
        "detected": report.prediction,
        "z_threshold": report.z_threshold,
        "tokens_scored": report.tokens_scored,
        "green_fraction": round(report.green_fraction, 4),
    }
    if not report.prediction:
        raise CheckFailed(
            "no_watermark",
            f"watermark not detected: z {report.z_score:.2f} is below {report.z_threshold} over"
            f" {report.tokens_scored} scored tokens",
        )


def _report(result: dict[str, Any], as_json: bool) -> None:
    statement: Provenance | None = result.get("statement")
    if as_json:
        payload = {key: value for key, value in result.items() if key != "statement"}
        if statement is not None:
            payload["provenance"] = {
                "key_id": statement.key, "model_version": statement.version,
                "response_sha256": statement.sha256, "event_id": statement.event,
            }
        typer.echo(json.dumps(payload, indent=2))
        return
    if result.get("signature") == "verified" and statement is not None:
        typer.secho("OK ", fg="green", nl=False)
        typer.echo(
            f"signed by gateway key {statement.key}: model version {statement.version}, audit event"
            f" {statement.event}, response sha256 {statement.sha256}"
        )
    mark = result.get("watermark")
    if mark is not None:
        typer.secho("OK " if mark["detected"] else "NO ", fg="green" if mark["detected"] else "red", nl=False)
        typer.echo(
            f"watermark z-score {mark['z_score']:.2f} (p-value {mark['p_value']:.3g}, threshold {mark['z_threshold']},"
            f" {mark['tokens_scored']} tokens scored with base {mark['base']})"
        )
    error = result.get("error")
    if error is not None and error["kind"] != "no_watermark":
        typer.secho("FAILED ", fg="red", nl=False, err=True)
        typer.echo(f"{error['kind']}: {error['message']}", err=True)


def _hash(text: str) -> str:
    from services.gateway.domain.provenance import response_sha256

    return response_sha256(text)

