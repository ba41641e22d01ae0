"""Functions with Record-typed inputs and outputs, written as Apache's Python examples are."""

from __future__ import annotations

from typing import Any

from pulsar import Function
from pulsar.schema import Integer, Record, String


class Order(Record):  # type: ignore[misc]
    item = String()
    quantity = Integer()


class Invoice(Record):  # type: ignore[misc]
    item = String()
    quantity = Integer()
    total = Integer()


class PriceOrder(Function):  # type: ignore[misc]
    """An Order in, an Invoice out (10 per item)."""

    def process(self, order: Order, context: Any) -> Invoice:
        if not isinstance(order, Order):
            raise TypeError(f"expected an Order, got {type(order).__name__}")
        return Invoice(item=order.item, quantity=order.quantity, total=order.quantity * 10)


class Square:
    """An INT32 in, an INT64 out."""

    def process(self, n: int) -> int:
        if type(n) is not int:
            raise TypeError(f"expected an int, got {type(n).__name__}")
        return n * n


class SwapKeyValue:
    """A KEY_VALUE pair in, the pair swapped out."""

    def process(self, kv: Any) -> Any:
        return (kv.value, kv.key)


class PublishInvoice(Function):  # type: ignore[misc]
    """Publish the Invoice through ``context.publish`` to a ``customSchemaOutputs`` topic."""

    def process(self, order: Order, context: Any) -> None:
        topic = context.get_user_config_value("invoices")
        context.publish(topic, Invoice(item=order.item, quantity=order.quantity, total=order.quantity * 10))


class InvoiceSummary(Record):  # type: ignore[misc]
    """A reader's view of an Invoice: some of its fields, in another order."""

    total = Integer()
    item = String()


class Shipment(Record):  # type: ignore[misc]
    """Needs a field no Invoice has."""

    item = String()
    address = String()


class Summarize:
    """An InvoiceSummary in, ``item=total`` out."""

    def process(self, summary: InvoiceSummary) -> str:
        if not isinstance(summary, InvoiceSummary):
            raise TypeError(f"expected an InvoiceSummary, got {type(summary).__name__}")
        return f"{summary.item}={summary.total}"
