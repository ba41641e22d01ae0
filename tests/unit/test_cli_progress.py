"""The CLI's progress display: a redrawn bar on a terminal, a few plain lines otherwise."""

from __future__ import annotations

import io

import pytest

from engine.cli.progress import Progress, human_bytes


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_output_is_a_line_per_tenth_and_one_at_the_end_only() -> None:
    out = io.StringIO()
    with Progress("uploading pkg.zip", total=1000, stream=out) as p:
        for _ in range(100):
            p.advance(10)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert lines[0] == "uploading pkg.zip:  10% (100 B of 1000 B)"
    percents = [ln.split(":")[1].split("%")[0].strip() for ln in lines[:-1]]
    assert percents == [str(10 * i) for i in range(1, 10)]
    assert lines[-1].startswith("uploading pkg.zip: 100% (1000 B of 1000 B) — done in ")


def test_terminal_redraws_one_line_with_a_bar() -> None:
    out = Terminal()
    p = Progress("downloading", total=4 * 1024 * 1024, stream=out, min_interval=0)
    p.advance(1024 * 1024)
    p.advance(1024 * 1024)
    p.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    frames = text.rstrip("\n").split("\r\x1b[K")[1:]
    assert frames[0] == "[#######.......................] downloading:  25% (1.0 MiB of 4.0 MiB)"
    assert frames[1].startswith("[###############...............] downloading:  50% (2.0 MiB of 4.0 MiB)")
    assert frames[-1].endswith("s") and "done in" in frames[-1]


def test_terminal_redraws_are_rate_limited() -> None:
    out = Terminal()
    p = Progress("work", total=1_000_000, stream=out, min_interval=60)
    for _ in range(1000):
        p.advance(1)
    assert out.getvalue().count("\r") == 1  # the first draw; the rest fall inside the interval


def test_unknown_total_and_phases_and_failure() -> None:
    out = io.StringIO()
    with pytest.raises(RuntimeError):
        with Progress("draining w2", unit="instances moved", stream=out) as p:
            p.set_phase("asking the leader")
            p.update(3)
            raise RuntimeError("boom")
    lines = out.getvalue().splitlines()
    assert lines[0] == "draining w2 — asking the leader"
    assert lines[-1].startswith("draining w2: 3 instances moved — failed in ")


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1536, 5 * 1024**3)] == ["0 B", "1023 B", "1.5 KiB", "5.0 GiB"]
