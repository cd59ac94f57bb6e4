"""The engine interface every generation backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ChatRequest:
    """One chat completion to run."""

    request_id: str
    # OpenAI chat messages; `content` is a string or a list of text / image_url parts.
    messages: list[dict[str, Any]]
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0  # per request: engines that can seed each request do
    prefill: str = ""  # the reply starts with this text (engines that can continue a reply)
    stop: list[str] = field(default_factory=list)  # generation ends before any of these
    json_schema: dict | None = None


@dataclass
class EngineResult:
    """What an engine returned for one request; `text` includes the prefill."""

    request_id: str
    text: str
    finish_reason: str  # stop | length | error
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


class Engine(ABC):
    """Runs chat requests; implementations batch them as they see fit."""

    model_name: str

    @abstractmethod
    def generate(self, requests: list[ChatRequest]) -> list[EngineResult]:
        """One result per request, in the same order."""


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """The text before the first stop string, and whether one was found."""
    positions = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[: min(positions)], True) if positions else (text, False)
