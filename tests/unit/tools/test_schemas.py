"""The JSON schemas the models see are exactly those written by hand before the tools were
classes: llama.cpp's grammar and Gemini's function declarations are built from them, and the
chat template prints them into the small model's prompt, key order included."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from app.tools.registry import TOOL_NAMES, TOOLS

# What Gemini's function declarations and llama.cpp's JSON-schema grammar both accept.
PORTABLE_KEYWORDS = {
    "type",
    "properties",
    "required",
    "description",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
}

TODAYS_PARAMETERS: dict[str, dict[str, Any]] = {
    "check_order_status": {
        "type": "object",
        "properties": {
            "order_id": {
                "type": "string",
                "description": "the order number as the caller said it, e.g. A1042",
                "minLength": 1,
                "maxLength": 20,
                "pattern": "^[A-Za-z0-9][A-Za-z0-9-]{2,19}$",
            }
        },
        "required": ["order_id"],
    },
    "check_item_stock": {
        "type": "object",
        "properties": {
            "item": {
                "type": "string",
                "description": "the product name or SKU, e.g. croissant or CR-200",
                "minLength": 1,
                "maxLength": 100,
            }
        },
        "required": ["item"],
    },
    "book_appointment": {
        "type": "object",
        "properties": {
            "name": {
                "type": "string",
                "description": "the caller's name; leave it out to check the slot first",
                "minLength": 1,
                "maxLength": 100,
            },
            "date": {
                "type": "string",
                "description": "the day, YYYY-MM-DD",
                "minLength": 1,
                "maxLength": 10,
                "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            },
            "time": {
                "type": "string",
                "description": "the start time, 24-hour HH:MM",
                "minLength": 1,
                "maxLength": 5,
                "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
            },
            "phone": {
                "type": "string",
                "description": "a phone number to confirm on, if the caller gave one",
                "minLength": 1,
                "maxLength": 16,
                "pattern": "^\\+?[0-9]{7,15}$",
            },
            "reason": {
                "type": "string",
                "description": "what the appointment is for, in a few words",
                "minLength": 1,
                "maxLength": 200,
            },
        },
        "required": ["date", "time"],
    },
    "get_customer_profile": {
        "type": "object",
        "properties": {
            "phone": {
                "type": "string",
                "description": "only if the caller gave another number for their account",
                "minLength": 1,
                "maxLength": 16,
                "pattern": "^\\+?[0-9]{7,15}$",
            }
        },
        "required": [],
    },
    "transfer_to_agent": {
        "type": "object",
        "properties": {
            "reason": {
                "type": "string",
                "description": "why, in a few words",
                "minLength": 1,
                "maxLength": 200,
            },
            "department": {
                "type": "string",
                "description": "which team, if clear",
                "enum": ["sales", "support", "billing"],
            },
        },
        "required": ["reason"],
    },
    "search_knowledge_base": {
        "type": "object",
        "properties": {
            "query": {
                "type": "string",
                "description": "what to look up, in a few words",
                "minLength": 1,
                "maxLength": 200,
            }
        },
        "required": ["query"],
    },
    "end_call": {
        "type": "object",
        "properties": {
            "reason": {
                "type": "string",
                "description": "why the call ends, in a few words",
                "minLength": 1,
                "maxLength": 200,
            }
        },
        "required": [],
    },
}


TODAYS_DESCRIPTIONS: dict[str, str] = {
    "check_order_status": (
        "Look up an order's status, delivery date and tracking. Use only when the caller "
        "gave an order number; if they did not, ask for it first. Never guess a number."
    ),
    "check_item_stock": (
        "Check whether a product is in stock, how many are left and when it comes back. "
        "Use when the caller asks if we have something. Not for orders already placed."
    ),
    "book_appointment": (
        "Book an appointment. Use once the caller has given a date and a time; without "
        "their name yet, leave it out to check the slot, then ask for the name. Never "
        "invent a name, date or time: ask. If the slot is taken, offer the alternatives."
    ),
    "get_customer_profile": (
        "Look up the caller's customer record: name, tier, open orders, notes. Use when "
        "knowing who is calling helps. Leave phone out to use the number they call from."
    ),
    "transfer_to_agent": (
        "Transfer the call to a person. Use when the caller asks for a human, is upset, "
        "or needs something you cannot do. Say you are transferring them first."
    ),
    "search_knowledge_base": (
        "Search our documents for facts: policies, prices, menus, opening hours. Use for "
        "questions you cannot answer from the conversation. Not for orders or stock."
    ),
    "end_call": (
        "Hang up. Use only after the caller said goodbye or has nothing more to ask, and "
        "you have said goodbye too."
    ),
}


def test_the_schemas_are_todays_to_the_key_order() -> None:
    generated = {tool.name: tool.spec().parameters for tool in TOOLS}
    assert generated == TODAYS_PARAMETERS
    assert json.dumps(generated) == json.dumps(TODAYS_PARAMETERS)
    assert {tool.name: tool.spec().description for tool in TOOLS} == TODAYS_DESCRIPTIONS


def test_every_tool_has_a_spec_under_its_own_name() -> None:
    assert tuple(tool.spec().name for tool in TOOLS) == TOOL_NAMES


@pytest.mark.parametrize("tool", TOOLS, ids=TOOL_NAMES)
def test_parameters_are_a_valid_portable_json_schema(tool: Any) -> None:
    spec = tool.spec()
    Draft202012Validator.check_schema(spec.parameters)
    assert spec.parameters["type"] == "object"
    assert set(spec.parameters["required"]) <= set(spec.parameters["properties"])
    for prop in spec.parameters["properties"].values():
        assert set(prop) <= PORTABLE_KEYWORDS
        assert prop["description"]
    # Written for a small model: a few sentences, saying when to use the tool.
    assert 40 < len(spec.description) < 260
    assert "Use " in spec.description
