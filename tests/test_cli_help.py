"""The ``polyrnn`` command's help, which the docs' command-line page is generated from."""

from __future__ import annotations

import argparse

import pytest

from polyrnn import cli


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli._parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("command", ["demo", "train", "eval", "sample", "check"])
def test_every_option_explains_itself(command: str) -> None:
    parser = _subparsers()[command]
    assert parser.description, f"polyrnn {command} has no description"
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"polyrnn {command} {name} has no help text"
        # The formatter appends "(default: ...)" itself; a help text that says it too
        # would print it twice.
        assert "(default" not in action.help, f"polyrnn {command} {name}: {action.help!r}"


def test_descriptions_are_one_line() -> None:
    """Line breaks of a docstring would run words together on the generated page."""
    for command, parser in _subparsers().items():
        assert "\n" not in (parser.description or ""), command
