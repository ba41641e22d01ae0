# cython: language_level=3
# Write-behind buffer for function state (compiled twin of engine/hotpath/counters.py).
#
# Data: Python dicts/sets owned by the buffer, keyed by state key (str); values are
# ``bytes`` references handed over by the caller. Counter deltas are Python ints checked
# to fit 64 bits. The instance thread fills the buffer while user code runs and drains
# it once per batch: drain() hands the three containers to the caller, who owns them
# from then on, and starts new ones. Everything runs under the GIL.


cdef class _Missing:
    def __repr__(self):
        return "MISSING"


MISSING = _Missing()

cdef object _MIN = -(2 ** 63)
cdef object _MAX = 2 ** 63


cdef class StateBuffer:
    """Pending state changes of one batch: counter deltas, counter resets, value writes."""

    cdef public dict deltas
    cdef public set resets
    cdef public dict values

    def __init__(self):
        self.deltas = {}
        self.resets = set()
        self.values = {}

    cpdef void incr(self, str key, object amount) except *:
        """Add ``amount`` (a 64-bit integer) to counter ``key``."""
        amount = int(amount)
        if not _MIN <= amount < _MAX:
            raise OverflowError(f"counter amount {amount} does not fit in 64 bits")
        cdef object current = self.deltas.get(key)
        self.deltas[key] = amount if current is None else current + amount

    def delete_counter(self, str key):
        """Forget counter ``key``: the store drops it and pending deltas are discarded."""
        self.deltas.pop(key, None)
        self.resets.add(key)

    def counter_delta(self, str key):
        """``(pending delta, reset)``; with ``reset`` the stored value no longer counts."""
        return self.deltas.get(key, 0), key in self.resets

    def put(self, str key, value):
        """Write (or, with ``None``, delete) the value ``key``."""
        self.values[key] = value

    def pending_value(self, str key):
        """The value written in this batch, ``None`` if deleted, else ``MISSING``."""
        return self.values.get(key, MISSING)

    def is_empty(self):
        """True when there is nothing to commit."""
        return not (self.deltas or self.resets or self.values)

    def drain(self):
        """Hand over ``(deltas, resets, values)`` and start an empty buffer."""
        out = (self.deltas, self.resets, self.values)
        self.deltas = {}
        self.resets = set()
        self.values = {}
        return out
