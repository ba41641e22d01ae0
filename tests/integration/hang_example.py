"""A function package for worker tests: never returns on ``hang``."""

import os
import time

from pulsar import Function


class Hang(Function):  # type: ignore[misc]
    def process(self, input, context):  # type: ignore[no-untyped-def]
        if input == "hang":
            time.sleep(3600)
        return input + "!"


class HangOnce(Function):  # type: ignore[misc]
    """Hangs on the first ``hang`` (marked by creating the file named by user config ``marker``)."""

    def process(self, input, context):  # type: ignore[no-untyped-def]
        marker = context.get_user_config_value("marker")
        if input == "hang" and not os.path.exists(marker):
            open(marker, "w").close()
            time.sleep(3600)
        return input + "!"
