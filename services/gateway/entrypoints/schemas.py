"""OpenAI-shaped request bodies, as the gateway accepts them: the fields of OpenAI's API that it implements,
and a precise 400 for every other one (an unknown field, `n` > 1, tools) instead of silently ignoring it.
Responses and errors are built as plain dicts in entrypoints/openai_shapes.py (the hot path)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_MESSAGES = 256
MAX_STOP = 4


class StrictBody(BaseModel):
    # strict: a value of the wrong JSON type is refused, not converted ("max_tokens": "2", "stream": "true",
    # "n": true, "seed": 1.0 were each read as something the client may not have meant). Integers are still
    # accepted where a number is (temperature 1).
    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(StrictBody):
    type: Literal["text"]
    text: str


class Message(StrictBody):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = Field(default=None, max_length=64)

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(StrictBody):
    include_usage: bool = False


StopString = Annotated[str, Field(min_length=1)]
Stop = StopString | Annotated[list[StopString], Field(max_length=MAX_STOP)] | None
Seed = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]  # what the engines' and providers' generators take
PromptText = Annotated[str, Field(min_length=1)]


class SamplingFields(StrictBody):
    model: str = Field(min_length=1, max_length=200)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: Stop = None
    seed: Seed | None = None
    user: str | None = Field(default=None, max_length=256)
    n: Literal[1] = Field(default=1, description="One choice per request; n > 1 is refused with a clear error.")
    presence_penalty: Literal[0, 0.0] = 0.0
    frequency_penalty: Literal[0, 0.0] = 0.0

    @field_validator("n", "presence_penalty", "frequency_penalty", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        # A Literal compares by equality, and true == 1, false == 0: strict mode alone lets booleans through.
        if isinstance(value, bool):
            raise ValueError("Input should be a number, not a boolean")
        return value

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(SamplingFields):
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(SamplingFields):
    prompt: PromptText | Annotated[list[PromptText], Field(min_length=1, max_length=1)]
    max_tokens: int | None = Field(default=16, ge=1)
    echo: Literal[False] = False
    suffix: None = None

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens
