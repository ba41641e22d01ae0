"""asyncio helpers of the control plane: supervised background tasks and a loop-lag probe."""

from engine.aio.lag import LoopLagProbe
from engine.aio.supervisor import TaskSupervisor

__all__ = ["LoopLagProbe", "TaskSupervisor"]
