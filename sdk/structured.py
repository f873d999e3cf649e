"""Structured output: a model's reply parsed into a pydantic model.

:func:`structured_exchange` is the whole conversation as a generator that does
no I/O: it yields the messages to send and receives each :class:`Completion`;
the sync and async gateways drive it. The reply is stripped of markdown fences
(and of prose around a single JSON object), validated, and on failure the model
is re-asked with a correction message carrying the validation error, at most
``corrections`` times; then :class:`StructuredOutputError` is raised with the
raw text of the last reply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from sdk.errors import StructuredOutputError
from sdk.results import Completion

__all__ = [
    "DEFAULT_CORRECTIONS",
    "correction_message",
    "extract_json",
    "parse_output",
    "schema_instruction",
    "structured_exchange",
]

DEFAULT_CORRECTIONS = 2  # re-asks after the first reply
FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)

ModelT = TypeVar("ModelT", bound=BaseModel)


def extract_json(text: str) -> str:
    """The JSON part of a reply: inside a markdown fence if there is one, else from
    the first ``{`` to the last ``}`` when prose surrounds it, else the text itself."""
    fenced = FENCE.search(text)
    candidate = (fenced.group(1) if fenced else text).strip()
    if candidate.startswith(("{", "[")):
        return candidate
    start, end = candidate.find("{"), candidate.rfind("}")
    return candidate[start:end + 1] if 0 <= start < end else candidate


def parse_output(text: str, output: type[ModelT]) -> ModelT:
    """Validate a reply against ``output``; raises :class:`pydantic.ValidationError`."""
    return output.model_validate_json(extract_json(text))


def schema_instruction(output: type[BaseModel]) -> dict[str, Any]:
    """A system message asking for exactly one JSON object matching ``output``."""
    schema = json.dumps(output.model_json_schema(), separators=(",", ":"))
    return {"role": "system", "content": (
        "Reply with a single JSON object, and nothing else, that validates against this "
        f"JSON Schema:\n{schema}")}


def correction_message(error: ValidationError) -> dict[str, Any]:
    details = error.json(include_url=False, include_context=False)
    return {"role": "user", "content": (
        "Your previous reply did not validate against the JSON Schema. Errors:\n"
        f"{details}\nReply again with only the corrected JSON object.")}


def structured_exchange(messages: list[dict[str, Any]], output: type[ModelT],
                        corrections: int = DEFAULT_CORRECTIONS
                        ) -> Generator[list[dict[str, Any]], Completion, ModelT]:
    """Yield the messages of each attempt, receive its completion, return the model."""
    history = [schema_instruction(output), *messages]
    last_text, last_error = "", ""
    for _ in range(corrections + 1):
        completion = yield list(history)
        last_text = completion.text
        try:
            return parse_output(last_text, output)
        except ValidationError as exc:
            last_error = str(exc)
            history += [completion.to_message(), correction_message(exc)]
    raise StructuredOutputError(
        f"no valid {output.__name__} after {corrections + 1} attempts: {last_error}",
        raw_text=last_text, attempts=corrections + 1, errors=last_error)
