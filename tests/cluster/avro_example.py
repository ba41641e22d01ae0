"""An Avro function as an Apache user writes it: Record classes beside the function, in one file."""

from pulsar import Function
from pulsar.schema import Integer, Record, String


class Reading(Record):  # type: ignore[misc]
    sensor = String()
    celsius = Integer()


class Alert(Record):  # type: ignore[misc]
    sensor = String()
    fahrenheit = Integer()


class ToFahrenheit(Function):  # type: ignore[misc]
    def process(self, reading, context):  # type: ignore[no-untyped-def]
        return Alert(sensor=reading.sensor, fahrenheit=reading.celsius * 9 // 5 + 32)
