"""FunctionConfig to and from ``FunctionDetails``, the protobuf recorded in metadata.

Details written by Magnetar carry the submitted FunctionConfig (``magnetarFunctionConfig``)
so that ``get`` returns exactly what was given; details written by other workers are
turned back into a FunctionConfig field by field.
"""

from __future__ import annotations

from typing import Any

import orjson

from engine.config.function_config import FunctionConfig, parse_function_config
from engine.config.validation import FunctionSpec, resolve
from engine.proto import Function_pb2 as pb

__all__ = ["config_from_details", "spec_from_details", "to_details"]

_GUARANTEE = {
    "ATLEAST_ONCE": pb.ATLEAST_ONCE,
    "ATMOST_ONCE": pb.ATMOST_ONCE,
    "EFFECTIVELY_ONCE": pb.EFFECTIVELY_ONCE,
    "MANUAL": pb.MANUAL,
}
_SUB_TYPE = {"SHARED": pb.SHARED, "FAILOVER": pb.FAILOVER, "KEY_SHARED": pb.KEY_SHARED}


def to_details(spec: FunctionSpec) -> pb.FunctionDetails:
    """The ``FunctionDetails`` of a resolved function, as Pulsar's ``convert()`` builds it."""
    d = pb.FunctionDetails(
        tenant=spec.tenant,
        namespace=spec.namespace,
        name=spec.name,
        className=spec.class_name,
        logTopic=spec.log_topic or "",
        processingGuarantees=_GUARANTEE[spec.processing_guarantees],
        userConfig=orjson.dumps(spec.user_config).decode(),
        secretsMap=orjson.dumps(spec.secrets).decode() if spec.secrets else "",
        runtime=pb.FunctionDetails.PYTHON,
        autoAck=spec.auto_ack,
        parallelism=spec.parallelism,
        componentType=pb.FunctionDetails.FUNCTION,
        retainOrdering=spec.retain_ordering,
        retainKeyOrdering=spec.retain_key_ordering,
        subscriptionPosition=pb.EARLIEST if spec.subscription_position == "Earliest" else pb.LATEST,
        customRuntimeOptions=spec.config.custom_runtime_options or "",
        runtimeFlags=spec.config.runtime_flags or "",
        magnetarFunctionConfig=orjson.dumps(spec.config.to_dict()).decode(),
    )
    d.resources.cpu = spec.resources.cpu or 0.0
    d.resources.ram = spec.resources.ram or 0
    d.resources.disk = spec.resources.disk or 0
    src = d.source
    src.subscriptionType = _SUB_TYPE[spec.subscription_type]
    src.subscriptionName = spec.subscription_name
    src.cleanupSubscription = spec.cleanup_subscription
    src.subscriptionPosition = d.subscriptionPosition
    if spec.timeout_ms:
        src.timeoutMs = spec.timeout_ms
        src.negativeAckRedeliveryDelayMs = spec.timeout_ms
    for inp in spec.inputs:
        cs = src.inputSpecs[inp.topic]
        cs.schemaType = inp.schema_type or ""
        cs.serdeClassName = inp.serde_class_name or ""
        cs.isRegexPattern = inp.is_regex_pattern
        if inp.receiver_queue_size is not None:
            cs.receiverQueueSize.value = inp.receiver_queue_size
        for k, v in inp.consumer_properties.items():
            cs.consumerProperties[k] = v
        for k, v in inp.schema_properties.items():
            cs.schemaProperties[k] = v
        if inp.crypto_config:
            _crypto_spec(cs.cryptoSpec, inp.crypto_config)
    if spec.config.input_type_class_name:
        src.typeClassName = spec.config.input_type_class_name
    sink = d.sink
    if spec.output:
        sink.topic = spec.output
    sink.serDeClassName = spec.output_serde_class_name or ""
    sink.schemaType = spec.output_schema_type or ""
    sink.forwardSourceMessageProperty = spec.forward_source_message_property
    if spec.config.output_type_class_name:
        sink.typeClassName = spec.config.output_type_class_name
    for k, v in spec.output_schema_properties.items():
        sink.schemaProperties[k] = v
    prod = spec.producer
    if prod.crypto_config:
        _crypto_spec(sink.producerSpec.cryptoSpec, prod.crypto_config)
    if prod.max_pending_messages:
        sink.producerSpec.maxPendingMessages = prod.max_pending_messages
    if prod.max_pending_messages_across_partitions:
        sink.producerSpec.maxPendingMessagesAcrossPartitions = prod.max_pending_messages_across_partitions
    if prod.batch_builder:
        sink.producerSpec.batchBuilder = prod.batch_builder
    if spec.max_message_retries is not None:
        d.retryDetails.maxMessageRetries = spec.max_message_retries
        d.retryDetails.deadLetterTopic = spec.dead_letter_topic or ""
    return d


def _crypto_spec(out: pb.CryptoSpec, conf: dict[str, Any]) -> None:
    """Apache's CryptoSpec from a CryptoConfig (the key-reader config as JSON)."""
    out.cryptoKeyReaderClassName = conf.get("cryptoKeyReaderClassName") or ""
    out.cryptoKeyReaderConfig = orjson.dumps(conf.get("cryptoKeyReaderConfig") or {}).decode()
    out.producerEncryptionKeyName.extend(conf.get("encryptionKeys") or [])
    actions: Any = pb.CryptoSpec.FailureAction
    out.producerCryptoFailureAction = actions.Value(
        (conf.get("producerCryptoFailureAction") or "FAIL").upper()
    )
    out.consumerCryptoFailureAction = actions.Value(
        (conf.get("consumerCryptoFailureAction") or "FAIL").upper()
    )


def _crypto_config(spec: pb.CryptoSpec) -> dict[str, Any]:
    actions = pb.CryptoSpec.FailureAction
    return {
        "cryptoKeyReaderClassName": spec.cryptoKeyReaderClassName,
        "cryptoKeyReaderConfig": orjson.loads(spec.cryptoKeyReaderConfig)
        if spec.cryptoKeyReaderConfig
        else {},
        "encryptionKeys": list(spec.producerEncryptionKeyName),
        "producerCryptoFailureAction": actions.Name(spec.producerCryptoFailureAction),
        "consumerCryptoFailureAction": actions.Name(spec.consumerCryptoFailureAction),
    }


def config_from_details(d: pb.FunctionDetails) -> FunctionConfig:
    """The FunctionConfig behind ``d``: as submitted when recorded by Magnetar."""
    if d.magnetarFunctionConfig:
        return parse_function_config(orjson.loads(d.magnetarFunctionConfig))
    guarantee = {v: k for k, v in _GUARANTEE.items()}[d.processingGuarantees]
    data: dict[str, Any] = {
        "tenant": d.tenant,
        "namespace": d.namespace,
        "name": d.name,
        "className": d.className,
        "processingGuarantees": guarantee,
        "autoAck": d.autoAck,
        "parallelism": d.parallelism or 1,
        "retainOrdering": d.retainOrdering,
        "retainKeyOrdering": d.retainKeyOrdering,
        "subscriptionPosition": "Earliest" if d.subscriptionPosition == pb.EARLIEST else "Latest",
        "userConfig": orjson.loads(d.userConfig) if d.userConfig else {},
    }
    if d.logTopic:
        data["logTopic"] = d.logTopic
    if d.secretsMap:
        data["secrets"] = orjson.loads(d.secretsMap)
    if d.HasField("resources"):
        data["resources"] = {"cpu": d.resources.cpu, "ram": d.resources.ram, "disk": d.resources.disk}
    src = d.source
    if src.subscriptionName:
        data["subName"] = src.subscriptionName
    if src.timeoutMs:
        data["timeoutMs"] = src.timeoutMs
    data["cleanupSubscription"] = src.cleanupSubscription
    specs: dict[str, Any] = {}
    for topic, cs in src.inputSpecs.items():
        spec: dict[str, Any] = {"isRegexPattern": cs.isRegexPattern}
        if cs.schemaType:
            spec["schemaType"] = cs.schemaType
        if cs.serdeClassName:
            spec["serdeClassName"] = cs.serdeClassName
        if cs.HasField("receiverQueueSize"):
            spec["receiverQueueSize"] = cs.receiverQueueSize.value
        if cs.consumerProperties:
            spec["consumerProperties"] = dict(cs.consumerProperties)
        if cs.schemaProperties:
            spec["schemaProperties"] = dict(cs.schemaProperties)
        if cs.HasField("cryptoSpec"):
            spec["cryptoConfig"] = _crypto_config(cs.cryptoSpec)
        specs[topic] = spec
    for topic, serde in src.topicsToSerDeClassName.items():
        specs.setdefault(topic, {"serdeClassName": serde} if serde else {})
    if specs:
        data["inputSpecs"] = specs
    if d.sink.topic:
        data["output"] = d.sink.topic
    if d.sink.serDeClassName:
        data["outputSerdeClassName"] = d.sink.serDeClassName
    if d.sink.schemaType:
        data["outputSchemaType"] = d.sink.schemaType
    if src.typeClassName:
        data["inputTypeClassName"] = src.typeClassName
    if d.sink.typeClassName:
        data["outputTypeClassName"] = d.sink.typeClassName
    if d.sink.HasField("producerSpec") and d.sink.producerSpec.HasField("cryptoSpec"):
        data["producerConfig"] = {"cryptoConfig": _crypto_config(d.sink.producerSpec.cryptoSpec)}
    if d.HasField("retryDetails"):
        data["maxMessageRetries"] = d.retryDetails.maxMessageRetries
        if d.retryDetails.deadLetterTopic:
            data["deadLetterTopic"] = d.retryDetails.deadLetterTopic
    if d.customRuntimeOptions:
        data["customRuntimeOptions"] = d.customRuntimeOptions
    if d.runtimeFlags:
        data["runtimeFlags"] = d.runtimeFlags
    data["forwardSourceMessageProperty"] = d.sink.forwardSourceMessageProperty
    return parse_function_config(data)


def spec_from_details(d: pb.FunctionDetails) -> FunctionSpec:
    """The resolved function described by ``d``."""
    return resolve(config_from_details(d))
