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


def output_images(output: dict[str, Any]) -> list[dict[str, Any]]:
    """The images an output lists with a URL (as it is: no field is required but the URL)."""
    return [i for i in output.get("images") or [] if isinstance(i, dict) and i.get("url")]
