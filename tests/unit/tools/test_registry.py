"""Adding a tool is one new module and its class in `registry.TOOLS`: everything else that knows
the tools (the API's enums, the router's intents, the toolbox) reads that list."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from app.api.agents import AgentCreate, AgentFields, ToolSettings
from app.conversation import routing
from app.tools.arguments import ToolArguments
from app.tools.base import Tool
from app.tools.http import HttpTool
from app.tools.registry import HTTP_TOOL_NAMES, TOOL_NAMES, TOOLS, ToolBox, tool_class
from app.tools.transfer import HANDOFF
from tests import factories


@pytest.mark.parametrize("tool", TOOLS, ids=TOOL_NAMES)
def test_each_tool_is_one_complete_class_in_its_own_module(tool: type[Tool]) -> None:
    assert not inspect.isabstract(tool)
    assert issubclass(tool.arguments, ToolArguments)
    assert tool.spec().name == tool.name and tool.spec().parameters["type"] == "object"
    assert tool_class(tool.name) is tool
    assert [t.__module__ for t in TOOLS].count(tool.__module__) == 1
    assert tool.__module__.startswith("app.tools.")


def test_names_are_unique_and_derived_from_the_list() -> None:
    assert len(set(TOOL_NAMES)) == len(TOOLS)
    assert TOOL_NAMES == tuple(tool.name for tool in TOOLS)
    assert HTTP_TOOL_NAMES == tuple(t.name for t in TOOLS if issubclass(t, HttpTool))
    assert tool_class("go_to_step") is None


def test_the_api_enums_are_the_registrys() -> None:
    for model in (AgentCreate, AgentFields):
        tools: Any = model.model_json_schema()["properties"]["tools"]
        items = tools["items"] if "items" in tools else tools["anyOf"][0]["items"]
        assert items["enum"] == list(TOOL_NAMES)
    urls = ToolSettings.model_json_schema()["properties"]["urls"]
    assert urls["propertyNames"]["enum"] == [*HTTP_TOOL_NAMES, HANDOFF]


def test_the_router_and_the_toolbox_read_the_list() -> None:
    intents = {tool.intent.name for tool in TOOLS if tool.intent is not None}
    assert {intent.name for intent in routing._INTENTS} == intents
    box = ToolBox(factories.settings())
    assert tuple(box.tools) == TOOL_NAMES
    assert all(type(box.tools[tool.name]) is tool for tool in TOOLS)
