"""Run a command that gets SIGKILL when the test process dies: ``deathsig_exec.py PARENT_PID ARGV...``.

The parent-death signal is set here and kept across ``execv``. Setting it from a
``preexec_fn`` instead makes ``subprocess`` fork the whole test process and run its fork
handlers; once gRPC lives in that process (the process-runtime tests use it), its child
handler can fail on a closed epoll descriptor and the child dies before it execs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1

if __name__ == "__main__":
    parent, argv = int(sys.argv[1]), sys.argv[2:]
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the test process died before the signal was set
        sys.exit(1)
    os.execv(argv[0], argv)
