"""@tool: schema generation, validation, and failures fed back as tool results."""

from __future__ import annotations

import asyncio
import enum
from typing import Annotated, Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from sdk import Tool, Toolbox, ToolCall, ToolDefinitionError, tool
from sdk.tool_calls import InMemoryToolResultCache, run_tool_call
from sdk.tools import parse_docstring


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Address(BaseModel):
    street: str
    city: str = Field(description="City name")


class Customer(BaseModel):
    name: str
    address: Address
    tags: list[str] = []


@tool
def create_ticket(customer: Customer, title: str, priority: Priority = Priority.LOW,
                  channel: Literal["email", "phone"] = "email", due_days: int | None = None,
                  weight: Annotated[float, Field(ge=0, description="From Field")] = 1.0) -> str:
    """Open a support ticket.

    Longer explanation on a second line.

    Args:
        customer: Who the ticket is for.
        title: A short title,
            continued on the next line.
        priority (Priority): How urgent.
        channel: How to reach them.

    Returns:
        The ticket id.
    """
    return f"T-{customer.name}-{title}-{priority.value}-{channel}-{due_days}-{weight}"


def _params(t: Tool) -> dict[str, Any]:
    return t.schema()["function"]["parameters"]


def test_schema_top_level() -> None:
    schema = create_ticket.schema()
    assert schema["type"] == "function"
    assert schema["function"]["name"] == "create_ticket"
    assert schema["function"]["description"] == (
        "Open a support ticket.\n\nLonger explanation on a second line.")
    params = _params(create_ticket)
    assert params["type"] == "object"
    assert params["required"] == ["customer", "title"]
    assert params["additionalProperties"] is False
    assert "$defs" not in params and "$ref" not in str(params) and "title" not in params


def test_schema_descriptions_from_docstring_and_field() -> None:
    props = _params(create_ticket)["properties"]
    assert props["customer"]["description"] == "Who the ticket is for."
    assert props["title"]["description"] == "A short title, continued on the next line."
    assert props["priority"]["description"] == "How urgent."
    assert props["weight"]["description"] == "From Field"
    assert props["weight"]["minimum"] == 0


def test_schema_nested_models_are_inlined() -> None:
    customer = _params(create_ticket)["properties"]["customer"]
    assert customer["type"] == "object"
    assert customer["required"] == ["name", "address"]
    address = customer["properties"]["address"]
    assert address["properties"]["city"] == {"type": "string", "description": "City name"}
    assert customer["properties"]["tags"] == {"type": "array", "items": {"type": "string"},
                                              "default": []}


def test_schema_enum_literal_optional_defaults() -> None:
    props = _params(create_ticket)["properties"]
    assert props["priority"]["enum"] == ["low", "high"]
    assert props["priority"]["default"] == "low"
    assert props["channel"]["enum"] == ["email", "phone"]
    assert props["channel"]["default"] == "email"
    assert props["due_days"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert props["due_days"]["default"] is None


def test_a_property_named_title_survives_title_stripping() -> None:
    assert _params(create_ticket)["properties"]["title"]["type"] == "string"


def test_decorated_function_still_callable_and_validates() -> None:
    customer = Customer(name="ann", address=Address(street="s", city="c"))
    assert create_ticket(customer, "x") == "T-ann-x-low-email-None-1.0"
    kwargs = create_ticket.validate({"customer": {"name": "bo", "address": {"street": "s",
                                                                           "city": "c"}},
                                     "title": "t", "priority": "high"})
    assert isinstance(kwargs["customer"], Customer) and kwargs["priority"] is Priority.HIGH


def test_options_and_async_tools() -> None:
    @tool(name="refund", description="Refund money", requires_confirmation=True)
    async def refund_order(order_id: int, amount: float) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"refunded": amount, "order": order_id}

    assert refund_order.name == "refund" and refund_order.requires_confirmation
    assert refund_order.is_async
    assert refund_order.schema()["function"]["description"] == "Refund money"
    assert refund_order.invoke({"order_id": "7", "amount": 2.5}) == {"refunded": 2.5, "order": 7}
    assert asyncio.run(refund_order.arun(refund_order.validate({"order_id": 7, "amount": 1}))) == {
        "refunded": 1.0, "order": 7}


def test_sphinx_docstrings() -> None:
    summary, args = parse_docstring("Do it.\n\n:param x: the x\n:param int y: the y\n")
    assert summary == "Do it." and args == {"x": "the x", "y": "the y"}


@pytest.mark.parametrize("source", ["def f(*args: int) -> None: ...",
                                    "def f(**kw: int) -> None: ...",
                                    "def f(a, /) -> None: ...",
                                    "def f(a) -> None: ..."])
def test_unsupported_signatures_are_definition_errors(source: str) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    with pytest.raises(ToolDefinitionError) as caught:
        tool(namespace["f"])
    assert caught.value.tool_name == "f"


# ----------------------------------------------------------------- running calls


calls_made: list[tuple[int, str]] = []


@tool
def add_item(quantity: int, sku: Literal["A", "B"]) -> str:
    """Add an item to the basket."""
    calls_made.append((quantity, sku))
    if quantity == 13:
        raise RuntimeError("unlucky quantity")
    return f"added {quantity} x {sku}"


BOX = Toolbox([add_item])


def _call(arguments: dict[str, Any] | None = None, raw: str | None = None,
          name: str = "add_item") -> ToolCall:
    parse_error = "arguments are not valid JSON" if raw is not None else None
    return ToolCall("call_1", name, arguments or {}, raw or "{}", parse_error)


def test_valid_call_runs() -> None:
    record = run_tool_call(BOX, _call({"quantity": 2, "sku": "A"}))
    assert (record.ok, record.result, record.error) == (True, "added 2 x A", None)


def test_invalid_arguments_become_the_tool_result_without_running() -> None:
    calls_made.clear()
    record = run_tool_call(BOX, _call({"quantity": "many", "sku": "C", "extra": 1}))
    assert not record.ok and calls_made == []
    assert record.result.startswith("Error: invalid arguments for add_item")
    for field in ("quantity", "sku", "extra"):
        assert field in record.result


def test_unparseable_arguments_and_unknown_tools() -> None:
    bad_json = run_tool_call(BOX, _call(raw="{oops"))
    assert not bad_json.ok and "could not read the arguments" in bad_json.result
    unknown = run_tool_call(BOX, _call({}, name="delete_everything"))
    assert not unknown.ok and "no tool named 'delete_everything'" in unknown.result
    assert "add_item" in unknown.result


def test_tool_exceptions_become_the_tool_result() -> None:
    record = run_tool_call(BOX, _call({"quantity": 13, "sku": "B"}))
    assert not record.ok
    assert record.result == "Error: add_item failed: RuntimeError: unlucky quantity"


def test_cache_hit_skips_the_tool() -> None:
    cache = InMemoryToolResultCache()
    calls_made.clear()
    first = run_tool_call(BOX, _call({"quantity": 1, "sku": "A"}), cache)
    again = run_tool_call(BOX, _call({"quantity": 1, "sku": "A"}), cache)
    assert calls_made == [(1, "A")]
    assert (first.cached, again.cached) == (False, True)
    assert again.result == first.result == cache.records["call_1"].result


def test_cache_keeps_whether_the_call_succeeded() -> None:
    """A tool may return text that starts with "Error:" and still have succeeded."""
    @tool
    def echo(text: str) -> str:
        """Say it back."""
        return text

    cache, box = InMemoryToolResultCache(), Toolbox([echo])
    said = _call({"text": "Error: 42 found"}, name="echo")
    first, again = run_tool_call(box, said, cache), run_tool_call(box, said, cache)
    assert (first.ok, again.ok, again.cached) == (True, True, True)
    assert again.result == "Error: 42 found"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=6)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["quantity", "sku", "other"]), json_values))
def test_any_arguments_either_run_validated_or_are_rejected_unrun(args: dict[str, Any]) -> None:
    calls_made.clear()
    record = run_tool_call(BOX, _call(args))
    if record.ok or (record.error and "failed" in record.error):
        quantity, sku = calls_made[0]
        assert type(quantity) is int and sku in ("A", "B")
        assert "other" not in args
    else:
        assert calls_made == []
        assert record.result.startswith("Error: invalid arguments for add_item")


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=-10**6, max_value=10**6).filter(lambda n: n != 13),
       st.sampled_from(["A", "B"]))
def test_valid_arguments_always_run(quantity: int, sku: str) -> None:
    record = run_tool_call(BOX, _call({"quantity": quantity, "sku": sku}))
    assert record.ok and record.result == f"added {quantity} x {sku}"
