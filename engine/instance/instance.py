"""One running function instance: a thin loop around the hot path.

The loop runs on the instance's own thread, never on the client's:

1. ``batch_receive`` a batch of raw messages (blocking for the first one when idle);
2. hand it to the settlement of the function's guarantee
   (:mod:`engine.instance.settlement`), which runs it through the hot path and decides
   when each input is acknowledged, retried or dead-lettered;
3. once per turn let the settlement apply completions that arrived from the client's
   threads (they are only appended to deques there).

The instance's life is an explicit state machine (:class:`InstanceState`) with one
transition method.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pulsar

from engine.broker.adapter import MessageBuilder
from engine.broker.capabilities import BrokerCapabilities
from engine.broker.direct import producer_view
from engine.config.validation import FunctionSpec
from engine.function.loader import LoadedFunction
from engine.function.schemas import (
    TopicSchema,
)
from engine.hotpath import HotPath
from engine.instance.calls import AsyncDispatcher, BatchDispatcher, ThreadedDispatcher, input_batch_size
from engine.instance.context import InstanceContext
from engine.instance.crashes import EXIT_CALL_TIMED_OUT, TIMED_OUT_EXIT, CrashLedger, read_positions
from engine.instance.direct_views import use_consumer_view, views_enabled
from engine.instance.inputs import InputConsumer
from engine.instance.lag import InputLag
from engine.instance.log_topic import function_logger
from engine.instance.options import InstanceOptions
from engine.instance.output import attribute_output, file_handler
from engine.instance.producers import ProducerPool
from engine.instance.settlement import (
    DLQ_ERROR_PROPERTY,
    Settlement,
    SettlementParts,
    settlement_for,
)
from engine.instance.topic_setup import prepare_topics
from engine.instance.windows import WindowCall
from engine.state.store import StateStore

__all__ = ["DLQ_ERROR_PROPERTY", "FunctionInstance", "InstanceOptions", "InstanceState"]

log = logging.getLogger(__name__)


class InstanceState(enum.Enum):
    """Where an instance is in its life."""

    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class FunctionInstance:
    """Runs instance ``instance_id`` of a function on its own thread.

    Parameters
    ----------
    spec
        The validated function.
    instance_id
        Which instance of the function this is.
    function
        The loaded user code (its callable is shared by nobody else).
    client
        A connected ``pulsar.Client``.
    hot
        The hot-path twin to run.
    state_store
        Where state lives; ``None`` disables the state API.
    secrets_provider
        Provider for ``Context.get_secret``.
    options
        Batching, redelivery and shutdown settings.
    capabilities
        What the broker does; decides which broker workarounds run (default: Apache Pulsar).
    """

    def __init__(
        self,
        spec: FunctionSpec,
        instance_id: int,
        function: LoadedFunction,
        client: pulsar.Client,
        hot: HotPath,
        state_store: StateStore | None,
        secrets_provider: Any,
        options: InstanceOptions | None = None,
        capabilities: BrokerCapabilities | None = None,
    ) -> None:
        self.spec = spec
        self.instance_id = instance_id
        self.function = function
        self.client = client
        self.hot = hot
        self.state_store = state_store
        self.options = options or InstanceOptions()
        self.capabilities = capabilities or BrokerCapabilities.apache()
        self.stats = hot.stats.InstanceStats()
        self.function_id = str(uuid.uuid4())
        self.failure: BaseException | None = None
        self.state = InstanceState.CREATED
        self._secrets_provider = secrets_provider
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        self.producers = ProducerPool(
            client,
            spec.producer,
            f"{spec.fqfn}:{instance_id}",
            named=spec.processing_guarantees == "EFFECTIVELY_ONCE",
        )
        self.inputs = InputConsumer(
            client,
            spec,
            instance_id,
            hot,
            self.capabilities,
            batch_max_messages=input_batch_size(self.options.batch_max_messages, function, spec),
            batch_timeout_ms=self.options.batch_timeout_ms,
            nack_delay_ms=self.options.nack_delay_ms,
        )
        #: How far behind its inputs the instance is (one note per batch; read on demand).
        self.lag = InputLag(self.inputs)
        self.state_buffer = hot.counters.StateBuffer()
        self.settlement: Settlement | None = None
        self.crash_ledger: CrashLedger | None = None
        #: The function's logger (``function_logger`` names it so; :meth:`_build` configures it).
        self.logger = logging.getLogger(f"magnetar.function.{spec.fqfn}.{instance_id}")
        #: Closed with the instance (the call modes' event loop or thread pool).
        self._closers: list[Callable[[], None]] = []
        self._input_schemas: dict[str, TopicSchema] = {}
        self._output_schema: TopicSchema | None = None
        #: When the batch being processed began (monotonic), 0.0 between batches.
        self._batch_since = 0.0
        #: The dispatcher that abandons calls past ``timeoutMs`` (call threads, batches, windows).
        self._threaded: ThreadedDispatcher | BatchDispatcher | WindowCall | None = None
        #: Set when a stop gave up on a loop stuck in the function's code.
        self._abandoned = False

    # -- life cycle ----------------------------------------------------------------------------
    def _set_state(self, state: InstanceState) -> None:
        """The one place the state changes."""
        log.debug("%s:%s %s -> %s", self.spec.fqfn, self.instance_id, self.state.value, state.value)
        self.state = state

    def start(self, wait: float = 30.0) -> None:
        """Subscribe, create producers and start the loop thread; raises if that fails."""
        self._set_state(InstanceState.STARTING)
        self._thread = threading.Thread(
            target=self._run, name=f"instance-{self.spec.fqfn}:{self.instance_id}", daemon=True
        )
        self._thread.start()
        if not self._started.wait(wait):
            raise TimeoutError(f"instance {self.spec.fqfn}:{self.instance_id} did not start within {wait}s")
        if self.failure is not None:
            raise self.failure

    def stop(self) -> None:
        """Stop after the current batch, wait for in-flight outputs, close everything.

        A loop that is still inside the function's code :attr:`STUCK_STOP_S` after the stop
        was asked (a call that hangs) is abandoned: its consumer and producers are closed
        here, so no consumer of a stopped instance lingers on the broker taking inputs,
        and the stop returns at once. The call's thread ends if the call ever returns.
        """
        if self.state in (InstanceState.RUNNING, InstanceState.STARTING):
            self._set_state(InstanceState.STOPPING)
        self._stop.set()
        thread = self._thread
        if thread is None:
            return
        asked = time.monotonic()
        deadline = asked + self.options.stop_grace_s + 5.0
        while thread.is_alive() and time.monotonic() < deadline:
            thread.join(0.05)
            now = time.monotonic()
            if thread.is_alive() and self._batch_since and now - asked >= self.STUCK_STOP_S:
                self._abandon_loop(now - self._batch_since)
                return

    #: How long a stop waits for a loop inside the function's code before abandoning it.
    STUCK_STOP_S = 1.0

    def _abandon_loop(self, stuck_s: float) -> None:
        """Close the inputs and outputs of a loop stuck in a call; the call is left to itself."""
        log.warning(
            "%s:%s: abandoning a call that has run for %.0f s; closing its consumer and producers",
            self.spec.fqfn,
            self.instance_id,
            stuck_s,
        )
        self._abandoned = True
        self._close()
        self._set_state(InstanceState.STOPPED)

    @property
    def failure_text(self) -> str:
        """Why the loop stopped, as ``Type: message``; empty while it has not failed."""
        return "" if self.failure is None else f"{type(self.failure).__name__}: {self.failure}"

    def is_alive(self) -> bool:
        """True while the loop thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # -- building ------------------------------------------------------------------------------
    def _build(self) -> Settlement:
        """Open the inputs and build the Context, the dispatcher and the settlement (blocking)."""
        spec, hot = self.spec, self.hot
        self._input_schemas, self._output_schema = prepare_topics(
            spec, hot, self.client, self.capabilities, self.inputs, self.producers
        )
        who = f"{spec.fqfn}:{self.instance_id}"
        self.inputs.direct = use_consumer_view(hot, spec, self.function, self.inputs, who)
        self.inputs.open()
        log_producer = self.producers.get(spec.log_topic) if spec.log_topic else None
        context = InstanceContext(
            hot=hot,
            tenant=spec.tenant,
            namespace=spec.namespace,
            name=spec.name,
            function_id=self.function_id,
            function_version=self.options.function_version,
            instance_id=self.instance_id,
            input_topics=[i.topic for i in spec.inputs],
            output_topic=spec.output,
            output_serde_class_name=spec.output_serde_class_name,
            user_config=spec.user_config,
            secrets=spec.secrets,
            secrets_provider=self._secrets_provider,
            logger=self._logger(log_producer),
            stats=self.stats,
            producers=self.producers,
            state_store=self.state_store,
            state_buffer=self.state_buffer,
            acknowledge=self.inputs.ack_id,
            pulsar_client=self.client,
        )
        parts = SettlementParts(
            spec=spec,
            options=self.options,
            capabilities=self.capabilities,
            hot=hot,
            client=self.client,
            inputs=self.inputs,
            dispatcher=self._dispatcher(context),
            producers=self.producers,
            state_buffer=self.state_buffer,
            state_store=self.state_store,
            stats=self.stats,
            callbacks=context.callbacks,
            stopping=self._stop,
        )
        settlement = settlement_for(parts)
        settlement.start()
        if self.options.crash_ledger:
            ledger = CrashLedger(self.options.crash_ledger)
            ledger.open()
            ledger.one_topic = self.inputs.one_topic
            self.crash_ledger = ledger
            self._closers.append(ledger.close)
        return settlement

    def _logger(self, log_producer: Any) -> logging.Logger:
        logger = function_logger(self.spec.fqfn, self.instance_id, log_producer, self.spec.log_level)
        path = self.options.output_log
        if path:
            handler = file_handler(path)
            logger.addHandler(handler)

            def detach() -> None:
                logger.removeHandler(handler)
                handler.close()

            self._closers.append(detach)
        self.logger = logger
        return logger

    def _dispatcher(self, context: InstanceContext) -> Any:
        spec, hot = self.spec, self.hot
        patterns = [i for i in spec.inputs if i.is_regex_pattern]
        schemas = self._input_schemas
        if patterns:  # topics are discovered at run time: one codec for all of them
            codecs: dict[str, Any] = {}
            default_codec = schemas[patterns[0].topic].codec
        else:
            codecs = {topic: ts.codec for topic, ts in schemas.items()}
            default_codec = hot.serde.Codec(hot.serde.KIND_IDENTITY)
        output_codec = sender = None
        if spec.output and self._output_schema is not None:
            output_codec = self._output_schema.codec
            raw_output = self.producers.raw(spec.output)
            sender = hot.batching.OutputSender(
                producer_view(hot, raw_output) if views_enabled(hot) else raw_output,
                MessageBuilder,
                input_properties=self.options.input_message_properties,
                forward_properties=spec.forward_source_message_property,
                sequence_ids=spec.processing_guarantees == "EFFECTIVELY_ONCE",
            )
        common: dict[str, Any] = dict(
            hot=hot,
            context=context,
            codecs=codecs,
            default_codec=default_codec,
            output_codec=output_codec,
            send=sender,
            stats=self.stats,
            timeout_ms=spec.timeout_ms or 0,
        )
        function = self.function
        if spec.window is not None or function.process_batch is not None:  # timeoutMs: abandons calls
            timed: Any = (
                WindowCall(function.call, function.pass_context, **common)
                if spec.window is not None
                else BatchDispatcher(function.process_batch, **common)  # type: ignore[arg-type]
            )
            self._closers.append(timed.close)
            self._threaded = timed
            return timed
        if function.is_async:  # asyncio.wait_for cancels a coroutine past timeoutMs
            dispatcher: Any = AsyncDispatcher(
                function.call, function.pass_context, spec.max_pending_async_requests, **common
            )
            self._closers.append(dispatcher.close)
            return dispatcher
        if spec.concurrency > 1 or spec.timeout_ms:
            # With timeoutMs the calls run on a call thread, so the loop can give up on one.
            threaded = ThreadedDispatcher(
                function.call,
                function.pass_context,
                max(1, spec.concurrency),
                on_timeout=self._call_timed_out,
                **common,
            )
            self._closers.append(threaded.close)
            self._threaded = threaded
            return threaded
        return hot.dispatch.Dispatcher(
            function.call,
            function.pass_context,
            context,
            codecs,
            default_codec,
            output_codec,
            sender,
            self.stats,
            spec.timeout_ms or 0,
        )

    def _call_timed_out(self, msg: Any) -> None:
        """A call ran past ``timeoutMs``; in a process of its own, replace the process.

        The input is recorded in the crash ledger as the one in flight, then the process
        ends with :data:`EXIT_CALL_TIMED_OUT`: the runtime starts a new one, which counts a
        failed attempt for the input (and dead-letters it after ``maxMessageRetries``) as
        for any death. In the worker's own process the call is abandoned instead.
        """
        if not self.options.replace_process_on_timeout:
            return
        ledger = self.crash_ledger
        if ledger is not None:
            ledger.begin_one(msg)
        log.error(
            "%s:%s: process() ran over timeoutMs=%s; replacing the instance process",
            self.spec.fqfn,
            self.instance_id,
            self.spec.timeout_ms,
        )
        logging.shutdown()
        os._exit(EXIT_CALL_TIMED_OUT)

    # -- the loop ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            settlement = self._build()
        except BaseException as exc:
            self.failure = exc
            self._set_state(InstanceState.FAILED)
            self._started.set()
            self._close()
            return
        self.settlement = settlement
        self._set_state(InstanceState.RUNNING)
        self._started.set()
        try:
            if self.crash_ledger is not None and self.crash_ledger.last_in_flight():
                self._read_back_suspects(settlement, self.crash_ledger)
            if self.options.output_log:
                with attribute_output(self.logger):
                    self._loop(settlement)
            else:
                self._loop(settlement)
        except BaseException as exc:
            self.failure = exc
            log.exception("instance %s:%s crashed", self.spec.fqfn, self.instance_id)
        finally:
            if not self._abandoned:  # an abandoning stop closed everything already
                settlement.shutdown(time.monotonic() + self.options.stop_grace_s)
                self._close()
                self._set_state(InstanceState.FAILED if self.failure is not None else InstanceState.STOPPED)

    def _loop(self, settlement: Settlement) -> None:
        inputs, stop, stats, ledger, lag = self.inputs, self._stop, self.stats, self.crash_ledger, self.lag
        receive_failures = 0
        next_minute = time.monotonic() + 60.0
        idle = False
        while not stop.is_set():
            settlement.poll()
            try:
                # Idle with nothing in flight: block for the first message instead of
                # polling every batch timeout.
                msgs = inputs.receive(wait_first=idle and not settlement.busy)
            except pulsar.PulsarException as exc:  # a closed or reconnecting consumer
                if stop.is_set():
                    return
                receive_failures += 1
                if receive_failures == 1:
                    log.warning("%s:%s receive failed: %s", self.spec.fqfn, self.instance_id, exc)
                stop.wait(0.1)
                continue
            if receive_failures:
                log.info(
                    "%s:%s receiving again after %d failures",
                    self.spec.fqfn,
                    self.instance_id,
                    receive_failures,
                )
                receive_failures = 0
            idle = not msgs
            if idle:
                lag.found_none()
            else:
                lag.took(msgs)
                self._batch_since = time.monotonic()
                if ledger is None:
                    settlement.settle(msgs)
                else:
                    self._settle_recorded(settlement, ledger, msgs)
                self._batch_since = 0.0
            if time.monotonic() >= next_minute:
                stats.roll_minute()
                next_minute += 60.0

    def _read_back_suspects(self, settlement: Settlement, ledger: CrashLedger) -> None:
        """Read the inputs that were in flight at the last death from their topics (pulsar-lite).

        A broker that may never redeliver what a killed consumer held (pulsar-lite) could
        otherwise lose them; they are settled one at a time like any suspects (at least
        once: a copy the broker does deliver later runs again).
        """
        caps = self.capabilities
        if not caps.killed_consumer_may_lose_unacked:
            return
        caps.workaround(
            "read-back-inputs-of-a-dead-process",
            "inputs held by a killed consumer may never be delivered again; they are read from the topic",
        )
        for topic, ranges in ledger.last_in_flight().items():
            low = min(r[0] for r in ranges)
            high = max(r[1] for r in ranges)
            msgs = read_positions(self.client, topic, low, high, self._stop)
            if msgs:
                log.warning(
                    "%s:%s: read back %d inputs in flight at the last death",
                    self.spec.fqfn,
                    self.instance_id,
                    len(msgs),
                )
                self._batch_since = time.monotonic()
                self._isolate(settlement, ledger, msgs)
                self._batch_since = 0.0

    def _settle_recorded(self, settlement: Settlement, ledger: CrashLedger, msgs: list[Any]) -> None:
        """Settle a batch with its positions recorded first, one by one if it holds suspects."""
        if ledger.has_suspects and any(map(ledger.is_suspect, msgs)):
            self._isolate(settlement, ledger, msgs)
        else:
            ledger.begin_batch(msgs)
            settlement.settle(msgs)

    def _isolate(self, settlement: Settlement, ledger: CrashLedger, msgs: list[Any]) -> None:
        """Run a batch holding inputs that were in flight when the process died, one at a time."""
        retries = self.spec.max_message_retries
        ledger.begin_isolation(msgs)
        for msg in msgs:
            crashes = ledger.crash_count(msg)
            if crashes:
                how = ledger.last_exit or "died"
                text = f"instance {how} while processing this message ({crashes} times)"
                if how.startswith(TIMED_OUT_EXIT.split("{", 1)[0]):
                    self.stats.add_user_exception(text)  # a timeout is the function's failure
                else:
                    self.stats.add_system_exception(text)
                if retries is not None and crashes >= retries:
                    settlement.reject(msg, text)  # its count stays: a late copy is set aside too
                    continue
            ledger.begin_one(msg)
            settlement.settle([msg])
            ledger.settled(msg)

    def _close(self) -> None:
        closers, self._closers = self._closers, []
        for close in closers:
            close()
        self.inputs.close()
        self.producers.close()

    # -- status ----------------------------------------------------------------------------------
    def _counts(self) -> tuple[int, int]:
        s = self.settlement
        return (s.dead_lettered, s.duplicates_dropped) if s is not None else (0, 0)

    def status_proto(self, worker_id: str = "") -> Any:
        """Apache's ``FunctionStatus`` message for this instance."""
        from engine.instance.status import function_status

        dead_lettered, duplicates = self._counts()
        return function_status(
            self.stats.snapshot(),
            instance_id=self.instance_id,
            running=self.state is InstanceState.RUNNING and self.is_alive(),
            failure=self.failure_text or self.stalled,
            worker_id=worker_id,
            dead_lettered=dead_lettered,
            duplicates_dropped=duplicates,
            abandoned_calls=self.abandoned_calls,
            stalled=self.stalled,
        )

    @property
    def stalled(self) -> str:
        """``"in process() for 12 s"`` while a batch has run past the warning threshold, else empty."""
        since = self._batch_since
        if not since:
            return ""
        seconds = time.monotonic() - since
        if seconds < self.options.stall_warning_s:
            return ""
        return f"in process() for {seconds:.0f} s"

    @property
    def abandoned_calls(self) -> int:
        """Calls that ran past ``timeoutMs`` and were left to finish on their own thread."""
        return self._threaded.abandoned_calls if self._threaded is not None else 0

    def metrics_proto(self) -> Any:
        """Apache's ``MetricsData`` message for this instance."""
        from engine.instance.status import metrics_data

        return metrics_data(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """The stats snapshot with how far behind its inputs the instance is (may call the broker)."""
        snap: dict[str, Any] = self.stats.snapshot()
        snap["input_lag_ms"] = self.lag.lag_ms()
        snap["input_backlog_entries"] = self.lag.backlog()
        return snap

    def status(self) -> dict[str, Any]:
        """Apache's FunctionStatus fields for this instance, as a dict."""
        from engine.instance.status import status_dict

        return status_dict(self.status_proto())

    # -- read-only views used by tests and status ----------------------------------------------
    @property
    def dead_lettered(self) -> int:
        """Inputs sent to a dead-letter topic."""
        return self._counts()[0]

    @property
    def duplicates_dropped(self) -> int:
        """Redelivered inputs dropped because they were processed already."""
        return self._counts()[1]

    @property
    def inputs_read_back(self) -> int:
        """Inputs read back from the topic because the broker never delivered them again."""
        return self.settlement.inputs_read_back if self.settlement is not None else 0
