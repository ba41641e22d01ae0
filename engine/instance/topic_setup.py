"""Before an instance subscribes: resolve its topics' schemas and encryption, and check them.

The input subscription and the output producers register what is resolved here with the
broker (:mod:`engine.function.schemas`, :mod:`engine.instance.crypto`); where the broker
keeps no schemas (pulsar-lite), :mod:`engine.broker.schema_registry` checks them instead.
"""

from __future__ import annotations

import orjson
import pulsar

from engine.broker.capabilities import BrokerCapabilities
from engine.broker.schema_registry import SchemaChecks
from engine.config.validation import FunctionSpec
from engine.function.errors import FunctionLoadError
from engine.function.schemas import (
    TopicSchema,
    extra_output_schemas,
    input_schemas,
    output_schema,
    subscription_schema,
    with_writer_schema,
)
from engine.hotpath import HotPath
from engine.instance.crypto import consumer_crypto_options, producer_crypto_options
from engine.instance.inputs import InputConsumer
from engine.instance.producers import ProducerPool

__all__ = ["prepare_topics"]


def prepare_topics(
    spec: FunctionSpec,
    hot: HotPath,
    client: pulsar.Client,
    capabilities: BrokerCapabilities,
    inputs: InputConsumer,
    producers: ProducerPool,
) -> tuple[dict[str, TopicSchema], TopicSchema | None]:
    """Configure ``inputs`` and ``producers``; returns the inputs' schemas by topic and the output's.

    Blocking (schema checks may read the broker); raises :class:`FunctionLoadError` or
    ``pulsar.IncompatibleSchema`` naming what does not fit.
    """
    schemas = input_schemas(hot, spec)
    output = output_schema(hot, spec)
    inputs.schema = subscription_schema(spec, schemas)
    cryptos = {
        orjson.dumps(i.crypto_config, option=orjson.OPT_SORT_KEYS) for i in spec.inputs if i.crypto_config
    }
    if len(cryptos) > 1:
        raise FunctionLoadError("inputSpecs: every encrypted input must use the same cryptoConfig")
    for i in spec.inputs:
        if i.crypto_config:
            inputs.crypto_options = consumer_crypto_options(
                i.crypto_config, f"inputSpecs[{i.topic}].cryptoConfig"
            )
            break
    checks = SchemaChecks(client, capabilities)
    for i in spec.inputs:
        if not i.is_regex_pattern:
            recorded = checks.check_consumer(i.topic, schemas[i.topic].registered)
            if recorded is not None:  # decode with the writer's schema, as the broker would serve it
                schemas[i.topic] = with_writer_schema(hot, schemas[i.topic], recorded["schema"])
    if spec.output:
        options = producer_crypto_options(spec.producer.crypto_config, "producerConfig.cryptoConfig")
        registered = output.registered if output is not None else None
        if registered is not None:
            checks.register_producer(spec.output, registered)
            options["schema"] = registered
        if options:
            producers.configure_topic(spec.output, **options)
    for topic, schema in extra_output_schemas(hot, spec).items():
        if getattr(schema, "registrable", True) and topic != spec.output:
            checks.register_producer(topic, schema)
            producers.configure_topic(topic, schema=schema)
    return schemas, output
