"""The Context a connector gets: the Context of functions, with state committed by the runner."""

from __future__ import annotations

from typing import Any

from engine.hotpath import HotPath
from engine.instance.context import InstanceContext
from engine.instance.log_topic import function_logger
from engine.instance.producers import ProducerPool
from engine.state.store import StateStore

__all__ = ["connector_context"]


def connector_context(
    *,
    hot: HotPath,
    spec: Any,
    function_id: str,
    function_version: str,
    instance_id: int,
    input_topics: list[str],
    output_topic: str | None,
    config: dict[str, Any],
    secrets_provider: Any,
    stats: Any,
    producers: ProducerPool,
    state_store: StateStore | None,
    state_buffer: Any,
    acknowledge: Any,
) -> InstanceContext:
    """A function Context for a connector; its ``user_config`` is the connector's config.

    ``spec`` is a sink's FunctionSpec or a :class:`~engine.io.spec.SourceSpec` (``tenant``,
    ``namespace``, ``name``, ``fqfn``, ``secrets``, ``log_topic``, ``output_serde_class_name``).
    """
    log_producer = producers.get(spec.log_topic) if spec.log_topic else None
    return InstanceContext(
        hot=hot,
        tenant=spec.tenant,
        namespace=spec.namespace,
        name=spec.name,
        function_id=function_id,
        function_version=function_version,
        instance_id=instance_id,
        input_topics=input_topics,
        output_topic=output_topic,
        output_serde_class_name=spec.output_serde_class_name,
        user_config=config,
        secrets=spec.secrets,
        secrets_provider=secrets_provider,
        logger=function_logger(spec.fqfn, instance_id, log_producer),
        stats=stats,
        producers=producers,
        state_store=state_store,
        state_buffer=state_buffer,
        acknowledge=acknowledge,
    )
