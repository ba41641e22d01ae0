"""How the function is called: serially in the hot path, or concurrently.

=============================== ==============================================
the function                    how a batch is run
=============================== ==============================================
``process(input, context)``     the compiled hot path, one call after another
``async def process``           :class:`AsyncDispatcher`, up to ``maxPendingAsyncRequests`` in flight
``concurrency: N`` (N > 1)      :class:`ThreadedDispatcher`, on N threads
``process_batch(inputs, ctx)``  :class:`BatchDispatcher`, one call per batch
=============================== ==============================================

Every mode settles a batch once all its calls completed and publishes its outputs in
input order, so ``retainOrdering`` (per partition) and ``retainKeyOrdering`` (per key)
hold for outputs in every mode.
"""

from engine.instance.calls.async_calls import AsyncDispatcher, async_batch_size, input_batch_size
from engine.instance.calls.batch import BatchDispatcher
from engine.instance.calls.threaded import ThreadedDispatcher

__all__ = [
    "AsyncDispatcher",
    "BatchDispatcher",
    "ThreadedDispatcher",
    "async_batch_size",
    "input_batch_size",
]
