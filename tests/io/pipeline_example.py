"""The middle of the file → function → jdbc-postgres pipeline: a line becomes a row."""

import json

from pulsar import Function


class LineToRow(Function):  # type: ignore[misc]
    """``line-00042`` becomes ``{"id": 42, "line": "line-00042"}``."""

    def process(self, input, context):  # type: ignore[no-untyped-def]
        return json.dumps({"id": int(input.rsplit("-", 1)[1]), "line": input})
