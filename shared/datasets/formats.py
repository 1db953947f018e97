"""Format detection and record validation for JSONL, CSV and Parquet datasets (the files themselves are read by
shared/datasets/raw_files.py; its names are re-exported here, where callers have always found them).

Record kinds (what a record means) are detected from keys: OpenAI chat (`messages`), TRL prompt/completion,
preference pairs (TRL `prompt/chosen/rejected` or OpenAI DPO `input/preferred_output/non_preferred_output`)
and plain `text`. Containers (how records are stored) are detected from the file name. Everything streams:
nothing here holds more than one record (or one Parquet batch) in memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from shared.datasets.raw_files import (
    FOREIGN_BOMS,
    Container,
    DatasetError,
    RawRecord,
    detect_container,
    iter_raw,
)
from shared.json_input import parse_json

RecordKind = Literal["chat", "prompt_completion", "preference", "text"]
RECORD_KINDS: tuple[str, ...] = ("chat", "prompt_completion", "preference", "text")
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
DEFAULT_MAX_RECORD_CHARS = 32_000
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    line_no: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.reason}"


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    line_no: int
    record: dict[str, Any]
    format: str


def kind_of(record: dict[str, Any]) -> RecordKind | None:
    keys = record.keys()
    if "messages" in keys:
        return "chat"
    if {"input", "preferred_output", "non_preferred_output"} <= keys or {"chosen", "rejected"} <= keys:
        return "preference"
    if "prompt" in keys and "completion" in keys:
        return "prompt_completion"
    if "text" in keys:
        return "text"
    return None


def parse_raw(raw: RawRecord) -> tuple[dict[str, Any] | None, str | None]:
    """Decode one raw record into a dict, or return why it is not one."""
    if raw.problem is not None:
        return None, raw.problem
    if isinstance(raw.raw, dict):
        return raw.raw, None
    for bom, encoding in FOREIGN_BOMS:
        if raw.raw.startswith(bom):
            return None, f"not UTF-8: the line starts with a {encoding} byte-order mark (save the file as UTF-8)"
    try:
        # Decoded here, not by json.loads: given bytes it guesses UTF-16/32 from NUL bytes and would read a
        # mangled line as some other text instead of refusing it. A UTF-8 byte-order mark is accepted.
        text = raw.raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 ({exc.reason} at byte {exc.start})"
    try:
        value = parse_json(text)
    except ValueError as exc:
        return None, f"bad JSON: {exc}"
    if not isinstance(value, dict):
        return None, f"bad JSON: expected an object, got {type(value).__name__}"
    return value, None


def _messages_issues(messages: Any, where: str, *, need_assistant: bool) -> tuple[list[str], int]:
    """Problems with a message list and the characters of its contents."""
    if not isinstance(messages, list) or not messages:
        return [f"{where} must be a non-empty list of messages"], 0
    issues: list[str] = []
    chars = 0
    has_answer = False
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            issues.append(f"{where}[{i}] must be an object with role and content")
            continue
        role = message.get("role")
        if role not in CHAT_ROLES:
            issues.append(f"{where}[{i}].role {role!r} is not one of {sorted(CHAT_ROLES)}")
        content = message.get("content")
        if content is None and message.get("tool_calls"):
            continue
        if not isinstance(content, str):
            issues.append(f"{where}[{i}].content must be a string")
            continue
        chars += len(content)
        if role == "assistant" and content.strip():
            has_answer = True
    if need_assistant and not issues and not has_answer:
        issues.append(f"empty completion: {where} has no assistant message with content")
    return issues, chars


def _text_or_messages(value: Any, where: str, *, need_assistant: bool, required: bool) -> tuple[list[str], int]:
    if isinstance(value, str):
        if required and not value.strip():
            return [f"empty completion: {where} is empty"], 0
        return [], len(value)
    if isinstance(value, list):
        return _messages_issues(value, where, need_assistant=need_assistant)
    return [f"{where} must be a string or a list of messages, got {type(value).__name__}"], 0


def _mixed_forms(record: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """TRL reads a record's prompt and answers as one form, all plain text or all message lists; a record mixing
    them (a list of messages as `chosen`, a string as `rejected`) crashed the trainer inside TRL."""
    forms = {name: "a string" if isinstance(record[name], str) else "a list of messages"
             for name in names if name in record and isinstance(record[name], (str, list))}
    if len(set(forms.values())) < 2:
        return []
    said = ", ".join(f"{name} is {form}" for name, form in forms.items())
    return [f"{', '.join(forms)} must be all strings or all lists of messages, not a mix ({said})"]


def validate_record(record: dict[str, Any], kind: str, *, max_chars: int = DEFAULT_MAX_RECORD_CHARS) -> list[str]:
    """Reasons this record is not a valid `kind` training example (empty list = valid)."""
    actual = kind_of(record)
    if actual != kind:
        found = actual or "no known layout"
        return [f"record is {found} (keys {sorted(record)[:8]}), but the dataset is {kind}"]
    issues: list[str] = []
    chars = 0
    parts: list[tuple[list[str], int]] = []
    if kind == "chat":
        parts.append(_messages_issues(record["messages"], "messages", need_assistant=True))
    elif kind == "prompt_completion":
        parts.append(_text_or_messages(record["prompt"], "prompt", need_assistant=False, required=False))
        parts.append(_text_or_messages(record["completion"], "completion", need_assistant=True, required=True))
        parts.append((_mixed_forms(record, ("prompt", "completion")), 0))
    elif kind == "preference":
        if "input" in record:
            source = record["input"]
            if not isinstance(source, dict) or "messages" not in source:
                parts.append((["input must be an object with messages"], 0))
            else:
                parts.append(_messages_issues(source["messages"], "input.messages", need_assistant=False))
            names = ("preferred_output", "non_preferred_output")
        else:
            if "prompt" in record:
                parts.append(_text_or_messages(record["prompt"], "prompt", need_assistant=False, required=False))
            names = ("chosen", "rejected")
            parts.append((_mixed_forms(record, ("prompt", "chosen", "rejected")), 0))
        for name in names:
            parts.append(_text_or_messages(record[name], name, need_assistant=True, required=True))
    else:
        text = record["text"]
        if not isinstance(text, str):
            parts.append(([f"text must be a string, got {type(text).__name__}"], 0))
        elif not text.strip():
            parts.append((["empty text"], 0))
        else:
            parts.append(([], len(text)))
    for part_issues, part_chars in parts:
        issues.extend(part_issues)
        chars += part_chars
    if not issues and chars > max_chars:
        issues.append(f"over-long record: {chars} characters of text exceed the limit of {max_chars}")
    return issues


def _message_fields(messages: Any, prefix: FieldPath) -> Iterator[tuple[FieldPath, str]]:
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                yield (*prefix, i, "content"), message["content"]


def text_fields(record: dict[str, Any], kind: str) -> Iterator[tuple[FieldPath, str]]:
    """Every free-text field of a record, with the path that `set_field` accepts."""
    if kind == "chat":
        yield from _message_fields(record.get("messages"), ("messages",))
        return
    if kind == "text":
        if isinstance(record.get("text"), str):
            yield ("text",), record["text"]
        return
    if kind == "preference" and isinstance(record.get("input"), dict):
        yield from _message_fields(record["input"].get("messages"), ("input", "messages"))
        names: tuple[str, ...] = ("preferred_output", "non_preferred_output")
    elif kind == "preference":
        names = ("prompt", "chosen", "rejected")
    else:
        names = ("prompt", "completion")
    for name in names:
        value = record.get(name)
        if isinstance(value, str):
            yield (name,), value
        else:
            yield from _message_fields(value, (name,))


def get_field(record: Any, path: FieldPath) -> Any:
    node = record
    for key in path:
        node = node[key]
    return node


def set_field(record: dict[str, Any], path: FieldPath, value: Any) -> None:
    parent = get_field(record, path[:-1])
    parent[path[-1]] = value


def field_path_str(path: FieldPath) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


def _first_kind(path: Path, container: Container) -> str:
    first_problem: str | None = None
    for raw in iter_raw(path, container):
        record, problem = parse_raw(raw)
        if record is not None and (kind := kind_of(record)) is not None:
            return kind
        if first_problem is None:
            # Named in the error: when no line can be read at all, the first line's real problem (bad bytes,
            # bad JSON, too deep) is what the data owner has to fix, not the missing keys.
            why = problem if record is None else f"its keys {sorted(record)[:8]} match no known layout"
            first_problem = f"line {raw.line_no}: {why}"
    if first_problem is None:
        raise DatasetError(f"{path}: cannot detect the record format: the dataset has no records")
    raise DatasetError(
        f"{path}: cannot detect the record format: {first_problem}; no record has messages, prompt/completion, "
        "prompt/chosen/rejected, input/preferred_output/non_preferred_output or text"
    )


def detect_format(path: Path, fmt: str = "auto") -> str:
    """Record kind of a dataset: `fmt` if given, else the kind of its first decodable record."""
    if fmt != "auto":
        if fmt not in RECORD_KINDS:
            raise DatasetError(f"format {fmt!r} is not one of {', '.join(RECORD_KINDS)} or auto")
        return fmt
    return _first_kind(path, detect_container(path))


def iter_records(
    path: Path | str, fmt: str = "auto", *, max_chars: int = DEFAULT_MAX_RECORD_CHARS
) -> Iterator[DatasetRecord]:
    """Stream valid records; raise DatasetError naming the line at the first invalid one."""
    path = Path(path)
    kind = detect_format(path, fmt)
    for raw in iter_raw(path):
        record, problem = parse_raw(raw)
        issues = [problem] if record is None else validate_record(record, kind, max_chars=max_chars)
        if issues or record is None:
            raise DatasetError(f"{path}: line {raw.line_no}: {'; '.join(str(i) for i in issues)}")
        yield DatasetRecord(raw.line_no, record, kind)


def validate_dataset(
    path: Path | str, fmt: str = "auto", *, max_chars: int = DEFAULT_MAX_RECORD_CHARS
) -> list[ValidationIssue]:
    """Every invalid line with its reason (streams; memory grows only with the number of issues)."""
    path = Path(path)
    kind = detect_format(path, fmt)
    issues: list[ValidationIssue] = []
    for raw in iter_raw(path):
        record, problem = parse_raw(raw)
        reasons = [problem] if record is None else validate_record(record, kind, max_chars=max_chars)
        issues.extend(ValidationIssue(raw.line_no, str(reason)) for reason in reasons)
    return issues
