# cython: language_level=3
# Instance statistics counters (compiled twin of engine/hotpath/stats.py).
#
# Data: C integer and double counters owned by the InstanceStats object, plus Python
# deques of the latest exception texts and dicts of user metrics that it also owns,
# updated by the instance thread under the GIL (once per batch for successes, once per
# failure for exceptions) and read by the control plane through snapshot(), also under
# the GIL, so a snapshot is always a consistent set of numbers; snapshot() returns new
# containers (copies) that the caller owns.

import time
from collections import deque

LATEST_EXCEPTIONS = 10


cdef class InstanceStats:
    """Counters for one function instance, total and for the current minute."""

    cdef public long long received
    cdef public long long processed_ok
    cdef public long long user_exceptions
    cdef public long long system_exceptions
    cdef public double latency_sum_ms
    cdef public long long latency_count
    cdef public long long received_1min
    cdef public long long processed_ok_1min
    cdef public long long user_exceptions_1min
    cdef public long long system_exceptions_1min
    cdef public double latency_sum_ms_1min
    cdef public long long latency_count_1min
    cdef public long long last_invocation_ms
    cdef public object latest_user
    cdef public object latest_system
    cdef public dict user_metrics
    cdef public dict user_metrics_1min

    def __init__(self):
        self.reset()

    cpdef void add_received(self, long long count):
        """Count ``count`` messages taken from the inputs."""
        self.received += count
        self.received_1min += count

    cpdef void add_successes(self, long long count, double latency_sum_ms):
        """Count ``count`` successful messages whose latencies sum to ``latency_sum_ms``."""
        self.processed_ok += count
        self.processed_ok_1min += count
        self.latency_sum_ms += latency_sum_ms
        self.latency_sum_ms_1min += latency_sum_ms
        self.latency_count += count
        self.latency_count_1min += count

    def add_user_exception(self, str text):
        """Count one exception raised by the user's function."""
        self.user_exceptions += 1
        self.user_exceptions_1min += 1
        self.latest_user.append((text, int(time.time() * 1000)))

    def add_system_exception(self, str text):
        """Count one framework failure (decode, encode, publish, state)."""
        self.system_exceptions += 1
        self.system_exceptions_1min += 1
        self.latest_system.append((text, int(time.time() * 1000)))

    cpdef void set_last_invocation(self, long long epoch_ms):
        """Record when the function was last invoked, in epoch milliseconds."""
        self.last_invocation_ms = epoch_ms

    def record_metric(self, str name, double value):
        """Add one observation to the user metric ``name``."""
        cdef list entry
        for table in (self.user_metrics, self.user_metrics_1min):
            entry = (<dict>table).get(name)
            if entry is None:
                (<dict>table)[name] = [value, 1.0, value, value]
            else:
                entry[0] += value
                entry[1] += 1.0
                if value < entry[2]:
                    entry[2] = value
                if value > entry[3]:
                    entry[3] = value

    def roll_minute(self):
        """Start a new one-minute window."""
        self.received_1min = 0
        self.processed_ok_1min = 0
        self.user_exceptions_1min = 0
        self.system_exceptions_1min = 0
        self.latency_sum_ms_1min = 0.0
        self.latency_count_1min = 0
        self.user_metrics_1min = {}

    def reset(self):
        """Zero every counter (the ``ResetMetrics`` control call)."""
        self.received = 0
        self.processed_ok = 0
        self.user_exceptions = 0
        self.system_exceptions = 0
        self.latency_sum_ms = 0.0
        self.latency_count = 0
        self.last_invocation_ms = 0
        self.latest_user = deque(maxlen=LATEST_EXCEPTIONS)
        self.latest_system = deque(maxlen=LATEST_EXCEPTIONS)
        self.user_metrics = {}
        self.roll_minute()

    def snapshot(self):
        """A plain dict of every counter, safe to hand to another thread."""
        avg = self.latency_sum_ms / self.latency_count if self.latency_count else 0.0
        avg_1min = (
            self.latency_sum_ms_1min / self.latency_count_1min if self.latency_count_1min else 0.0
        )
        return {
            "received": self.received,
            "processed_ok": self.processed_ok,
            "user_exceptions": self.user_exceptions,
            "system_exceptions": self.system_exceptions,
            "avg_latency_ms": avg,
            "latency_sum_ms": self.latency_sum_ms,
            "latency_count": self.latency_count,
            "received_1min": self.received_1min,
            "processed_ok_1min": self.processed_ok_1min,
            "user_exceptions_1min": self.user_exceptions_1min,
            "system_exceptions_1min": self.system_exceptions_1min,
            "avg_latency_ms_1min": avg_1min,
            "last_invocation_ms": self.last_invocation_ms,
            "latest_user_exceptions": list(self.latest_user),
            "latest_system_exceptions": list(self.latest_system),
            "user_metrics": {k: list(v) for k, v in self.user_metrics.items()},
            "user_metrics_1min": {k: list(v) for k, v in self.user_metrics_1min.items()},
        }
