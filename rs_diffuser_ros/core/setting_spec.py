"""A setting's range, help text and dynamic/static flag, declared once on its dataclass field.

    alpha: float = setting(0.1, "Risk level ...", low=0.0, low_open=True, high=1.0)

Everything else derives from the field: validation (`check_field`, `check_fields`), the ROS
parameter descriptors (nodes/planner_params.py), the command-line overrides of the evaluation
(`add_arguments`). A field declared with `like(OtherClass, "name")` shares another class's spec.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Spec:
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed (alpha > 0)
    choices: tuple[str, ...] | None = None
    dynamic: bool = True  # may change while running (False: read at start-up only)
    allowed: tuple = ()  # out-of-range values that still mean something (sentinels, e.g. -1 = the model's own)

    def range_text(self) -> str:
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        if self.low is None and self.high is None:
            return ""
        left = "(" if self.low_open else "["
        text = f"{left}{_g(self.low)}, {_g(self.high)}]"
        return text + (f" or {', '.join(_g(v) for v in self.allowed)}" if self.allowed else "")


def setting(default, help: str, *, low=None, high=None, low_open=False, choices=None, dynamic=True, allowed=()):
    spec = Spec(help, low, high, low_open, tuple(choices) if choices else None, dynamic, tuple(allowed))
    return dataclasses.field(default=default, metadata={"spec": spec})


def like(cls, name: str, default=dataclasses.MISSING, **changes):
    """A field with the spec (and default) of `cls.name`; `changes` replace parts of the spec."""
    source = {f.name: f for f in dataclasses.fields(cls)}[name]
    spec = dataclasses.replace(source.metadata["spec"], **changes)
    return dataclasses.field(default=source.default if default is dataclasses.MISSING else default,
                             metadata={"spec": spec})


def specs(cls) -> dict[str, tuple[Any, Spec]]:
    """name -> (default, spec) for every field of `cls` that has a spec, in declaration order."""
    return {f.name: (f.default, f.metadata["spec"]) for f in dataclasses.fields(cls) if "spec" in f.metadata}


def check_field(cls, name: str, value) -> str | None:
    """Why `value` is not acceptable for `cls.name`, or None."""
    default, spec = specs(cls)[name]
    kind = type(default)
    if kind is bool:
        return None if isinstance(value, bool) else f"{name} must be true or false, got {value!r}"
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
            return f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}"
        if value in spec.allowed:
            return None
        if not math.isfinite(value):
            return f"{name} must be {'in ' + spec.range_text() if spec.range_text() else 'finite'}, got {value}"
        too_low = spec.low is not None and (value <= spec.low if spec.low_open else value < spec.low)
        too_high = spec.high is not None and value > spec.high
        if too_low or too_high:
            return f"{name} must be in {spec.range_text()}, got {_g(value)}"
        return None
    if not isinstance(value, str):
        return f"{name} must be a string, got {value!r}"
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}, got {value!r}"
    return None


def check_fields(obj) -> str | None:
    """The first reason any spec'd field of dataclass instance `obj` is out of range, or None."""
    for name in specs(type(obj)):
        reason = check_field(type(obj), name, getattr(obj, name))
        if reason:
            return reason
    return None


def add_arguments(parser: argparse.ArgumentParser, cls, names=None) -> None:
    """One `--name-with-dashes` option per dynamic spec'd field of `cls` (default None: not given)."""
    for name, (default, spec) in specs(cls).items():
        if (names is not None and name not in names) or not spec.dynamic:
            continue
        kind = type(default)
        parse = _parse_bool if kind is bool else kind
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=parse, default=None, metavar=kind.__name__.upper(),
                            help=f"{spec.help} {spec.range_text()} (default: {default!r})".replace("%", "%%"))


def given_arguments(args: argparse.Namespace, cls, names=None) -> dict:
    """The fields of `cls` (those in `names`, if given) that were given on the command line (see add_arguments)."""
    return {name: getattr(args, name) for name in specs(cls)
            if (names is None or name in names) and getattr(args, name, None) is not None}


def _parse_bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes", "on"):
        return True
    if text.lower() in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _g(value) -> str:
    return "inf" if value is None else f"{value:g}"
