"""Broker workarounds in the instance run only where the broker's capabilities ask for them.

The test broker is pulsar-lite. Declared as what it is, the instance reopens an ordered
consumer to get a failed input again and reads gaps back for EFFECTIVELY_ONCE; declared
as Apache Pulsar, none of that runs (``workarounds_run`` records every workaround that
ran in this process, by broker kind).
"""

from __future__ import annotations

import pulsar

from engine.broker.capabilities import workarounds_run
from engine.instance.inputs import BrokerRedelivers, ReopenToRedeliver
from engine.instance.settlement import EffectivelyOnce
from engine.instance.settlement.gaps import NoGapRepair, ReadBackGaps
from tests.integration.functions_under_test import Flaky
from tests.integration.harness import consume, produce, runner_for, wait_for


def _apache_workarounds() -> set[str]:
    return {name for name in workarounds_run() if name.startswith("apache:")}


def test_ordered_failure_reopens_the_consumer_only_on_pulsar_lite(
    broker: object, client: pulsar.Client, topic_prefix: str, data_dir: str
) -> None:
    url = broker.url  # type: ignore[attr-defined]
    Flaky.seen.clear()
    for kind in ("apache", "pulsar-lite"):
        inp, out = f"{topic_prefix}-{kind}-in", f"{topic_prefix}-{kind}-out"
        cfg = {"className": "Flaky", "inputs": [inp], "output": out, "retainOrdering": True}
        runner = runner_for(url, "native", f"{data_dir}/{kind}", cfg, broker_kind=kind)
        with runner:
            inst = runner.instances[0]
            produce(client, inp, [f"{kind}-m{i}" for i in range(3)])
            assert wait_for(lambda inst=inst: inst.stats.user_exceptions >= 1)
            if kind == "apache":
                assert type(inst.inputs.redelivery) is BrokerRedelivers
            else:
                assert type(inst.inputs.redelivery) is ReopenToRedeliver
                got = consume(client, out, 3)
                assert sorted(m.data().decode() for m in got) == [f"{kind}-m{i}" for i in range(3)]
                assert "pulsar-lite:reopen-consumer-to-redeliver" in workarounds_run()
    assert _apache_workarounds() == set()


def test_effectively_once_reads_gaps_back_only_on_pulsar_lite(
    broker: object, client: pulsar.Client, topic_prefix: str, data_dir: str
) -> None:
    url = broker.url  # type: ignore[attr-defined]
    for kind, repair in (("apache", NoGapRepair), ("pulsar-lite", ReadBackGaps)):
        inp, out = f"{topic_prefix}-{kind}-in", f"{topic_prefix}-{kind}-out"
        cfg = {
            "className": "Exclaim",
            "inputs": [inp],
            "output": out,
            "processingGuarantees": "EFFECTIVELY_ONCE",
        }
        with runner_for(url, "native", f"{data_dir}/{kind}", cfg, broker_kind=kind) as runner:
            inst = runner.instances[0]
            produce(client, inp, ["a", "b"])
            assert len(consume(client, out, 2)) == 2
            settlement = inst.settlement
            assert isinstance(settlement, EffectivelyOnce)
            assert type(settlement.gaps) is repair
    assert _apache_workarounds() == set()
