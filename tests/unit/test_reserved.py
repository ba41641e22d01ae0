"""The worker's internal namespace: reserved topics, and context.publish refusing them."""

from __future__ import annotations

import logging
import os

import pytest

from engine.hotpath import HotPath
from engine.instance.context import InstanceContext
from engine.security import ReservedTopic, is_reserved_topic, reserve_namespace, reserved, reserved_namespaces


class _Producers:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def get(self, topic: str) -> object:
        self.asked.append(topic)
        raise AssertionError("no producer may be made for a reserved topic")

    def touch(self, topic: str) -> None:
        pass


def _context(hot: HotPath, producers: _Producers) -> InstanceContext:
    return InstanceContext(
        hot=hot, tenant="public", namespace="default", name="f", function_id="id", function_version="1",
        instance_id=0, input_topics=["persistent://public/default/in"], output_topic=None,
        output_serde_class_name=None, user_config={}, secrets={}, secrets_provider=None,
        logger=logging.getLogger("test"), stats=None, producers=producers,  # type: ignore[arg-type]
        state_store=None, state_buffer=None, acknowledge=lambda _id, _topic: None,
    )  # fmt: skip


def test_reserved_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reserved, "_reserved", set(reserved._reserved))
    monkeypatch.setenv("MAGNETAR_RESERVED_NAMESPACES", "")
    reserve_namespace("acme/internal")
    assert os.environ["MAGNETAR_RESERVED_NAMESPACES"] == "acme/internal"  # child processes inherit it
    assert {"public/functions", "acme/internal"} <= reserved_namespaces()
    assert is_reserved_topic("persistent://public/functions/metadata")
    assert is_reserved_topic("acme/internal/x")
    assert is_reserved_topic("non-persistent://acme/internal/x")
    assert not is_reserved_topic("persistent://public/default/functions")
    assert not is_reserved_topic("metadata")  # public/default/metadata
    assert is_reserved_topic("persistent://acme/internal/.*", regex=True)
    assert not is_reserved_topic("persistent://acme/other/.*", regex=True)


@pytest.mark.parametrize("topic", ["persistent://public/functions/assignments", "public/functions/metadata"])
def test_publish_refuses_the_internal_namespace(hot: HotPath, topic: str) -> None:
    producers = _Producers()
    ctx = _context(hot, producers)
    with pytest.raises(ReservedTopic, match="internal namespace"):
        ctx.publish(topic, "x")
    assert producers.asked == []
