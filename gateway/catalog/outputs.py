"""What the four endpoints return (fal-protocol.md §10), for documentation and metering."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class OutputImage(BaseModel):
    model_config = ConfigDict(extra="allow")

    url: str
    width: int | None = None
    height: int | None = None
    content_type: str | None = None
    file_name: str | None = None
    file_size: int | None = None


class EditOutput(BaseModel):
    model_config = ConfigDict(extra="allow")

    images: list[OutputImage]
    timings: dict[str, Any]
    seed: int
    has_nsfw_concepts: list[bool]
    prompt: str
