"""Argument types shared by every `spore` subcommand: a bad value names the flag and the fix."""

from __future__ import annotations

import argparse


def int_at_least(text: str, lowest: int, what: str = "an integer") -> int:
    """`text` as an int >= `lowest`, or an argparse error saying which rule it broke."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if v < lowest:
        raise argparse.ArgumentTypeError(f"must be at least {lowest}, got {v}")
    return v


def positive_int(text: str) -> int:
    return int_at_least(text, 1)


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v
