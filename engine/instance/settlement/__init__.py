"""Settlements: one small object per processing guarantee, chosen once per instance.

============== ==================================================================
guarantee      settlement
============== ==================================================================
ATMOST_ONCE    :class:`AtMostOnce`: ack on receipt, failures counted
ATLEAST_ONCE   :class:`AtLeastOnce`: ack after persistence, retry, dead-letter
MANUAL         :class:`AtLeastOnce` with acks left to the function
EFFECTIVELY_ONCE :class:`EffectivelyOnce`: state and input progress in one transaction
============== ==================================================================
"""

from engine.instance.settlement.at_least_once import AtLeastOnce
from engine.instance.settlement.at_most_once import AtMostOnce
from engine.instance.settlement.base import Settlement, SettlementParts
from engine.instance.settlement.effectively_once import EffectivelyOnce
from engine.instance.settlement.retries import DLQ_ERROR_PROPERTY

__all__ = [
    "DLQ_ERROR_PROPERTY",
    "AtLeastOnce",
    "AtMostOnce",
    "EffectivelyOnce",
    "Settlement",
    "SettlementParts",
    "settlement_for",
]


def settlement_for(parts: SettlementParts) -> Settlement:
    """The settlement of the function's processing guarantee (or of its window)."""
    window = parts.spec.window
    if window is not None:
        from engine.instance.windows import WindowedSettlement

        return WindowedSettlement(parts, parts.dispatcher, window)
    guarantee = parts.spec.processing_guarantees
    if guarantee == "EFFECTIVELY_ONCE":
        return EffectivelyOnce(parts)
    if guarantee == "ATMOST_ONCE":
        return AtMostOnce(parts)
    if guarantee == "MANUAL":
        return AtLeastOnce(parts, auto_ack=False)
    return AtLeastOnce(parts, auto_ack=parts.spec.auto_ack)
