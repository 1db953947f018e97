"""The two models an evaluation compares, behind one small interface: batched greedy generation and
continuation log-likelihoods. A LoRA artefact is loaded once on its base; the base's answers come from the
same weights with the adapter switched off, so both are measured on identical prompts, in one process."""

from __future__ import annotations

import contextlib
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.models.bases import BaseModelInfo

DEFAULT_BATCH_SIZE = 16
# Where the models run: "auto" is the GPU when torch sees one (an evaluator pod on a GPU node), else the CPU.
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """The torch device for `device` (one of DEVICES); asking for "cuda" where there is none is an error, not a
    silent fall-back to a CPU run a hundred times slower."""
    import torch

    if device not in DEVICES:
        raise ValueError(f"device {device!r}: expected one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but torch sees no GPU here")
    return device


@dataclass(frozen=True)
class ContinuationScore:
    """log P(continuation | prefix) summed over the continuation's tokens, and how many tokens that was."""

    logprob: float
    tokens: int

    @property
    def mean_nll(self) -> float:
        return -self.logprob / max(1, self.tokens)


class ScoringModel:
    """One side of the comparison. `adapter` is None for a plain model, True/False for a PEFT model with its
    adapter on (fine-tuned) or off (base), or the name of the adapter to switch to in a PEFT model holding two
    (an RLHF policy and the SFT version it started from)."""

    def __init__(self, model: Any, tokenizer: Any, *, label: str, adapter: bool | str | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.label = label
        self.adapter = adapter
        self.batch_size = batch_size

    @property
    def device(self) -> Any:
        """Where the model's weights are: inputs are built there."""
        return self.model.device

    @contextlib.contextmanager
    def _active(self) -> Iterator[None]:
        import torch

        with torch.inference_mode():
            if isinstance(self.adapter, str):
                self.model.set_adapter(self.adapter)
                yield
            elif self.adapter is False:
                with self.model.disable_adapter():
                    yield
            else:
                yield

    # ----------------------------------------------------------------------------------- prompts

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        """The text the model sees before it answers `messages`, rendered as training rendered it."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "

    # ----------------------------------------------------------------------------------- generation

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 32) -> list[str]:
        """Greedy continuations of `prompts`, batched: prompts sorted by length (less padding), left-padded,
        one `generate` call per batch; returned in the order given."""
        tok = self.tokenizer
        tok.padding_side = "left"
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[str] = [""] * len(prompts)
        with self._active():
            for start in range(0, len(order), self.batch_size):
                batch = [prompts[i] for i in order[start:start + self.batch_size]]
                encoded = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
                generated = self.model.generate(
                    **encoded, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                    pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                )
                new_tokens = generated[:, encoded["input_ids"].shape[1]:]
                texts = tok.batch_decode(new_tokens, skip_special_tokens=True)
                for index, text in zip(order[start:start + self.batch_size], texts, strict=True):
                    out[index] = text
        return out

    def generate_tokens(self, prompt_ids: Sequence[Sequence[int]], *, max_new_tokens: int) -> list[list[int]]:
        """Greedy continuations of already-tokenised prompts (verbatim extraction compares token ids)."""
        import torch

        tok = self.tokenizer
        pad = tok.pad_token_id
        order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
        out: list[list[int]] = [[] for _ in prompt_ids]
        with self._active():
            for start in range(0, len(order), self.batch_size):
                rows = [list(prompt_ids[i]) for i in order[start:start + self.batch_size]]
                width = max(len(r) for r in rows)
                ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
                mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
                generated = self.model.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                    do_sample=False, num_beams=1, pad_token_id=pad, eos_token_id=None,
                )
                for index, row in zip(order[start:start + self.batch_size], generated[:, width:].tolist(), strict=True):
                    out[index] = row
        return out

    # ----------------------------------------------------------------------------------- scoring

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[ContinuationScore]:
        """log P(continuation | prefix) for each (prefix, continuation). The pair is tokenised as one text and
        continuation tokens are those that end past the prefix (offsets): a BPE token such as " 1" that
        straddles the boundary carries continuation text, so it counts."""
        tok = self.tokenizer
        rows: list[tuple[list[int], int]] = []
        for prefix, continuation in pairs:
            encoded = tok(prefix + continuation, add_special_tokens=False, return_offsets_mapping=True)
            ids = list(encoded["input_ids"])
            first = next((i for i, (_, end) in enumerate(encoded["offset_mapping"]) if end > len(prefix)), len(ids))
            rows.append((ids, max(first, 1)))  # the first token has no context to be predicted from
        return self.score_ids(rows)

    def score_ids(self, rows: Sequence[tuple[Sequence[int], int]]) -> list[ContinuationScore]:
        """Like `score`, for token ids: each row is (ids, index of the first scored token)."""
        import torch

        pad = self.tokenizer.pad_token_id
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        out: list[ContinuationScore] = [ContinuationScore(0.0, 0)] * len(rows)
        with self._active():
            for start in range(0, len(order), self.batch_size):
                chunk = [rows[i] for i in order[start:start + self.batch_size]]
                width = max(len(ids) for ids, _ in chunk)
                ids = torch.tensor([list(r) + [pad] * (width - len(r)) for r, _ in chunk], device=self.device)
                mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r, _ in chunk], device=self.device)
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
                logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
                targets = ids[:, 1:]
                picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                indices = order[start:start + self.batch_size]
                for row, (index, (r, first)) in enumerate(zip(indices, chunk, strict=True)):
                    lo, hi = first - 1, len(r) - 1  # position t predicts token t+1
                    total = float(picked[row, lo:hi].sum()) if hi > lo else 0.0
                    out[index] = ContinuationScore(total, max(0, hi - lo))
        return out


@dataclass
class ModelPair:
    tuned: ScoringModel
    base: ScoringModel
    tokenizer: Any
    adapter: str  # "lora" | "full"

    def both(self) -> tuple[tuple[str, ScoringModel], ...]:
        return (("tuned", self.tuned), ("base", self.base))


def extract_artifact(tar_path: Path, target: Path) -> Path:
    """Unpack a trained artefact (the trainer's deterministic tar); the `data` filter refuses absolute paths,
    `..`, links out of the tree and device files, so a crafted tar cannot write outside `target`."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path) as archive:
        archive.extractall(target, filter="data")
    return target


def load_pair(base: BaseModelInfo, model_dir: Path, *, batch_size: int = DEFAULT_BATCH_SIZE,
              device: str = "cpu", start_dir: Path | None = None) -> ModelPair:
    """The fine-tuned model from its unpacked artefact and what it started from, on `device` (DEVICES): the base,
    or with `start_dir` (an RLHF policy started from an SFT version) that version's adapter on the base, so
    "did quality fall while reward rose" is asked of what this job changed, not of the SFT before it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer_dir = model_dir if (model_dir / "tokenizer_config.json").exists() else base.path
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    target = resolve_device(device)
    base_model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32).to(target).eval()
    if start_dir is not None:
        from peft import PeftModel

        if not (model_dir / "adapter_config.json").exists() or not (start_dir / "adapter_config.json").exists():
            raise ValueError("comparing against a starting policy needs LoRA adapters on both sides")
        both = PeftModel.from_pretrained(base_model, model_dir, adapter_name="tuned")
        both.load_adapter(str(start_dir), adapter_name="start")
        both = both.to(target).eval()
        return ModelPair(
            tuned=ScoringModel(both, tokenizer, label="fine-tuned", adapter="tuned", batch_size=batch_size),
            base=ScoringModel(both, tokenizer, label="starting policy", adapter="start", batch_size=batch_size),
            tokenizer=tokenizer, adapter="lora",
        )
    if (model_dir / "adapter_config.json").exists():
        from peft import PeftModel

        tuned_model = PeftModel.from_pretrained(base_model, model_dir).to(target).eval()
        return ModelPair(
            tuned=ScoringModel(tuned_model, tokenizer, label="fine-tuned", adapter=True, batch_size=batch_size),
            base=ScoringModel(tuned_model, tokenizer, label="base", adapter=False, batch_size=batch_size),
            tokenizer=tokenizer, adapter="lora",
        )
    tuned_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(target).eval()
    return ModelPair(
        tuned=ScoringModel(tuned_model, tokenizer, label="fine-tuned", batch_size=batch_size),
        base=ScoringModel(base_model, tokenizer, label="base", batch_size=batch_size),
        tokenizer=tokenizer, adapter="full",
    )
