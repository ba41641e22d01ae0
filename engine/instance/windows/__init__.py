"""Window functions for Python: count and time windows, tumbling and sliding, event time."""

from engine.instance.windows.buffer import Fired, WindowBuffer
from engine.instance.windows.settlement import WindowCall, WindowedSettlement, timestamp_extractor

__all__ = ["Fired", "WindowBuffer", "WindowCall", "WindowedSettlement", "timestamp_extractor"]
