"""A tool's arguments as a pydantic model: the JSON schema the models see, and the check of what
they send back."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

# Only the JSON-schema subset every engine accepts (Gemini's function declarations and
# llama.cpp's grammar both): no `format`, no `additionalProperties`, no `anyOf`, no `title`.
# Unknown keys a model adds are dropped before validation instead. The order is the order the
# keys are written in: the chat template prints the schema into the small model's prompt.
PORTABLE_KEYWORDS = ("type", "description", "minLength", "maxLength", "pattern", "enum")

# A phone number as callers give it, once spaces, dots, dashes and brackets are gone.
PHONE = r"^\+?[0-9]{7,15}$"


class ToolArgumentError(ValueError):
    """The model's arguments do not fit the tool; the message says what to ask the caller."""


class ToolArguments(BaseModel):
    """The arguments of one tool; subclass it with one field per argument.

    A field has a `description` (the model reads it) and only constraints every engine accepts:
    `min_length`, `max_length`, `pattern`, or a `Literal` for a choice; an optional argument
    defaults to None. Spoken values are rewritten first by `mode="before"` field validators
    ("a 1042" becomes "A1042", "2:30 pm" becomes "14:30"). Unknown keys and empty optional values
    are dropped (small models add both) and strings are trimmed.
    """

    # Strict, like the JSON schema: 42 is not a string. Python's regex engine, like the
    # jsonschema validator these checks replaced.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, regex_engine="python-re")

    @model_validator(mode="before")
    @classmethod
    def _trimmed(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        return {
            key: value.strip() if isinstance(value, str) else value
            for key, value in data.items()
            if key in cls.model_fields
        }

    # Runs after each field's own `mode="before"` normaliser, so "( )" for a phone is dropped.
    @field_validator("*", mode="wrap")
    @classmethod
    def _empty_optional_dropped(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        name = info.field_name
        if name is not None and not cls.model_fields[name].is_required() and value in ("", None):
            return None
        return handler(value)

    @classmethod
    def parameters(cls) -> dict[str, Any]:
        """The JSON schema the models see: an object of string properties, portable keys only."""
        return _parameters(cls)

    @classmethod
    def check(cls, arguments: Any) -> dict[str, Any]:
        """The model's `arguments`, normalised and checked, in the order the model gave them.

        Raises `ToolArgumentError` naming each problem, e.g. "missing date".
        """
        if not isinstance(arguments, Mapping):
            raise ToolArgumentError("the arguments must be a JSON object")
        try:
            checked = cls.model_validate(arguments).model_dump(exclude_none=True)
        except ValidationError as exc:
            problems = {_explain(cls, error) for error in exc.errors()}
            raise ToolArgumentError("; ".join(sorted(problems))) from None
        return {key: checked[key] for key in arguments if key in checked}


class NoArguments(ToolArguments):
    """A tool that takes nothing."""


def phone_digits(value: Any) -> Any:
    """'(415) 555-0123' → '4155550123', '+1 555 0199' → '+15550199'."""
    return re.sub(r"[\s().-]", "", value) if isinstance(value, str) else value


class _PortableSchema(GenerateJsonSchema):
    """pydantic's schema with optional arguments as plain strings (no null branch, no default)."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])


@cache
def _parameters(arguments: type[ToolArguments]) -> dict[str, Any]:
    schema = arguments.model_json_schema(schema_generator=_PortableSchema)
    properties = {
        name: _portable(name, prop) for name, prop in schema.get("properties", {}).items()
    }
    return {"type": "object", "properties": properties, "required": schema.get("required", [])}


def _portable(name: str, prop: dict[str, Any]) -> dict[str, Any]:
    unsupported = set(prop) - set(PORTABLE_KEYWORDS) - {"title"}
    if unsupported or prop.get("type") != "string" or not prop.get("description"):
        raise TypeError(
            f"argument {name!r} must be a described string with only {PORTABLE_KEYWORDS} "
            f"(it has {sorted(prop)}): Gemini and llama.cpp's grammar take nothing else"
        )
    return {key: prop[key] for key in PORTABLE_KEYWORDS if key in prop}


def _explain(arguments: type[ToolArguments], error: Any) -> str:
    if not error["loc"]:  # a check across arguments: its message is the whole explanation
        return str(error["msg"])
    field_name = str(error["loc"][0])
    if error["type"] == "missing":
        return f"missing {field_name}"
    prop = arguments.parameters()["properties"][field_name]
    if "enum" in prop:
        return f"{field_name} must be one of {', '.join(prop['enum'])}"
    return f"{field_name} is not valid (expected {prop['description']})"
