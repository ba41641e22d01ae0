"""The ``magnetar`` command line."""

from engine.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
