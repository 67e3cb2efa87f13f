"""What every `spore` command shares: the parser class and argument types.

A bad value names the flag and the fix; `--help` shows each flag's default;
an unknown flag is named as such (issue 12).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to a flag's help, unless the help already speaks of its
    default or there is none worth showing (None, an on/off switch, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        none = action.default is None or action.default is False or action.default == [] \
            or action.default == argparse.SUPPRESS  # `in` would take a default of 0 for False
        switch = action.nargs == 0  # --flag / --no-flag: "(default: True)" would only confuse
        if "default" in text or not action.option_strings or action.required or none or switch:
            return text
        return super()._get_help_string(action) or text


class Parser(argparse.ArgumentParser):
    """argparse with spore's conventions; subcommands inherit it (add_parser uses the parent's class).

    argparse checks for a missing command before it looks at unknown flags, so
    `spore --bogus` would say "a command is required"; this parser names the
    flag it does not know instead.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self._given: list[str] = []

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> Any:
        required = "the following arguments are required: "
        if message.startswith(required):
            unknown = [a for a in self._given if self._is_unknown_flag(a)]
            if unknown:
                message = f"unrecognized arguments: {' '.join(unknown)}"
            else:
                missing = message[len(required):]
                for action in self._actions:  # a missing subcommand: list the commands
                    if isinstance(action.choices, dict) and missing == (action.metavar or action.dest):
                        message = f"a command is required: {', '.join(action.choices)} (see --help)"
        super().error(message)

    def _is_unknown_flag(self, token: str) -> bool:
        if not token.startswith("-") or token == "-" or token == "--" or self._negative_number_matcher.match(token):
            return False
        flag = token.split("=", 1)[0]
        known = self._option_string_actions
        if flag in known:
            return False
        # argparse accepts unambiguous abbreviations of long flags (--verb for --verbose).
        return not (self.allow_abbrev and flag.startswith("--") and any(k.startswith(flag) for k in known))


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


def non_negative_int(text: str) -> int:
    return int_at_least(text, 0)


def port(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535."""
    v = int_at_least(text, 0, "a port number")
    if v > 65535:
        raise argparse.ArgumentTypeError(f"must be at most 65535, got {v}")
    return v


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v
