"""garak (NVIDIA's LLM vulnerability scanner, 0.17) as an optional suite: both models are written out as
plain Hugging Face directories and garak probes each of them offline, in its own process, through its
`huggingface` generator; its JSONL report becomes attack success per probe, for the fine-tuned model and its
base on the same probes.

garak pins its own dependency ranges (transformers among them), so it lives in a separate environment and
is called as a command (`command:` in suites.yaml, e.g. [/opt/garak/bin/python, -m, garak]). Where that
command is missing the suite does not apply and says so; it never fails a job for being absent."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from pydantic import Field

from services.evaluator.domain.garak_report import GarakReport, metric_name, parse_report
from services.evaluator.engine.models import ModelPair
from services.evaluator.suites.base import EvaluationInputs, Suite, SuiteConfig, SuiteOutcome

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


class GarakError(RuntimeError):
    """garak ran but did not produce a report; the message carries the end of its output."""


class GarakConfig(SuiteConfig):
    command: list[str] = Field(default_factory=lambda: ["garak"], min_length=1,
                               description="How to start garak (its own environment).")
    probes: list[str] = Field(
        default_factory=lambda: ["promptinject.HijackHateHumans", "encoding.InjectBase64", "dan.Dan_11_0"],
        min_length=1, description="garak probe names, module.Class.")
    prompt_cap: int = Field(default=16, ge=1, le=10_000, description="garak's soft_probe_prompt_cap.")
    generations: int = Field(default=1, ge=1, le=20)
    max_new_tokens: int = Field(default=64, ge=4, le=2048)
    device: str = "cpu"
    timeout_s: int = Field(default=3600, ge=10)


class GarakSuite(Suite):
    name = "garak"
    Config = GarakConfig

    def applies_to(self, inputs: EvaluationInputs) -> str | None:
        config: GarakConfig = self.config  # type: ignore[assignment]
        if shutil.which(config.command[0]) is None:
            return f"garak is not installed here (command {config.command[0]!r} not found)"
        return None

    def run(self, inputs: EvaluationInputs) -> SuiteOutcome:
        config: GarakConfig = self.config  # type: ignore[assignment]
        reports: dict[str, GarakReport] = {}
        seconds: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="tunegate-garak-") as tmp:
            work = Path(tmp)
            for label, model_dir in export_pair(inputs.models, work / "models").items():
                started = time.perf_counter()
                reports[label] = run_garak(config, model_dir, work / label, seed=inputs.seed)
                seconds[label] = round(time.perf_counter() - started, 1)
        tuned, base = reports["tuned"], reports["base"]
        return SuiteOutcome(
            metrics=_metrics(tuned, config.probes), base_metrics=_metrics(base, config.probes),
            details={
                "garak_version": tuned.garak_version,
                "probes": config.probes, "prompt_cap": config.prompt_cap, "generations": config.generations,
                # non_finite: detector scores that were NaN or infinite, counted as hits (domain/garak_report.py)
                "by_probe": {p: {label: {"trials": r.probes[p].trials, "hits": r.probes[p].hits,
                                         "non_finite_scores": r.probes[p].non_finite,
                                         "by_detector": r.probes[p].by_detector}
                                 for label, r in reports.items() if p in r.probes} for p in config.probes},
                "non_finite_scores": {label: sum(t.non_finite for t in r.probes.values())
                                      for label, r in reports.items()},
                "seconds": seconds,
            },
        )


def _metrics(report: GarakReport, probes: list[str]) -> dict[str, float | None]:
    metrics: dict[str, float | None] = {"attack_success_rate": report.pooled()}
    for probe in probes:
        tally = report.probes.get(probe)
        metrics[metric_name(probe)] = tally.attack_success_rate if tally else None
    return metrics


def export_pair(pair: ModelPair, target: Path) -> dict[str, Path]:
    """Both models as plain Hugging Face directories (weights, config, tokenizer with its chat template).
    A LoRA pair is written as the adapter merged into a copy of the base, and the base without it: a copy,
    so the pair the other suites use stays as it is (it costs one more model in memory while writing)."""
    import copy

    if pair.adapter == "lora":
        models = {"tuned": copy.deepcopy(pair.tuned.model).merge_and_unload(),
                  "base": copy.deepcopy(pair.tuned.model).unload()}
    else:
        models = {"tuned": pair.tuned.model, "base": pair.base.model}
    out: dict[str, Path] = {}
    for label, model in models.items():
        directory = target / label
        model.save_pretrained(directory)
        pair.tokenizer.save_pretrained(directory)
        out[label] = directory
    return out


def run_garak(config: GarakConfig, model_dir: Path, work: Path, *, seed: int) -> GarakReport:
    """One garak run over `model_dir`, offline, with its config, logs and caches inside `work`."""
    work.mkdir(parents=True)
    reports = work / "reports"
    settings = {
        "system": {"parallel_attempts": False, "lite": True, "narrow_output": True},
        "run": {"seed": seed, "generations": config.generations, "soft_probe_prompt_cap": config.prompt_cap,
                "deprefix": True},
        "plugins": {"generators": {"huggingface": {"Pipeline": {
            "max_tokens": config.max_new_tokens,
            # Greedy and full precision: the same model gives the same answers on every run.
            "hf_args": {"torch_dtype": "float32", "do_sample": False, "device": config.device},
        }}}},
        "reporting": {"report_dir": str(reports)},
    }
    (work / "garak.yaml").write_text(yaml.safe_dump(settings))
    command = [*config.command, "--config", str(work / "garak.yaml"), "--target_type", "huggingface",
               "--target_name", str(model_dir), "--spec", ",".join(f"probes.{p}" for p in config.probes),
               "--report_prefix", "run"]
    env = {**os.environ, **OFFLINE_ENV, "XDG_DATA_HOME": str(work / "data"), "XDG_CONFIG_HOME": str(work / "cfg"),
           "XDG_CACHE_HOME": str(work / "cache")}
    done = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True, timeout=config.timeout_s,
                          check=False)
    report = reports / "run.report.jsonl"
    if done.returncode != 0 or not report.exists():
        tail = (done.stdout + done.stderr)[-2000:]
        raise GarakError(f"garak exited {done.returncode} without a report for {model_dir.name}: {tail}")
    with report.open(encoding="utf-8") as lines:
        return parse_report(lines)
