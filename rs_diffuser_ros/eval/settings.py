"""Evaluation settings given as short strings on the command line, parsed with errors that say what is wrong.

    averse:0.1     RS-Diffuser, CVaR_0.1 of the lower tail guides and selects
    seeking:0.1    RS-Diffuser, mean of the upper 10% tail (risk-seeking)
    neutral        RS-Diffuser at alpha = 1 (Diffuser-style value guidance); `neutral:1.0` too
    unguided       the same checkpoint, one sample, no guidance (Decision-Diffuser style)
    bc             behaviour cloning (--bc-checkpoint), or bc:PATH for another checkpoint
    scripted:NAME  a scripted risky_nav policy (shortcut, detour, ...): what the dataset was made of
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from rs_diffuser_ros.baselines.diffusion_variants import RISK_NEUTRAL_ALPHA, UNGUIDED_PLANNER_SETTINGS

KINDS = ("planner", "behaviour_cloning", "scripted")
SETTINGS_HELP = ("averse:ALPHA, seeking:ALPHA, neutral, unguided, bc, bc:PATH, scripted:NAME "
                 "(ALPHA in (0, 1]; e.g. averse:0.05 neutral seeking:0.1 bc unguided)")


class SettingError(ValueError):
    """An evaluation setting string that cannot be parsed."""


@dataclass(frozen=True)
class Setting:
    name: str                           # canonical string, the key in results.json
    kind: str                           # one of KINDS
    alpha: float | None = None          # planner only
    risk_mode: str | None = None        # planner only: averse | seeking
    planner_overrides: dict = field(default_factory=dict, hash=False, compare=False)
    checkpoint: Path | None = None      # behaviour cloning only; None = the --bc-checkpoint default
    policy: str | None = None           # scripted only

    @property
    def is_rs_diffuser(self) -> bool:
        """Guided by a risk measure at some alpha (averse, seeking or neutral), not a baseline."""
        return self.kind == "planner" and not self.planner_overrides

    @property
    def label(self) -> str:
        if self.kind == "planner" and self.planner_overrides:
            return "unguided diffusion"
        if self.kind == "planner":
            return "neutral (alpha=1)" if self.alpha == 1.0 else f"{self.risk_mode} alpha={self.alpha:g}"
        if self.kind == "behaviour_cloning":
            return "behaviour cloning"
        return f"scripted {self.policy}"


def parse_setting(text: str) -> Setting:
    raw = text
    text = text.strip()
    head, sep, arg = text.partition(":")
    head = head.lower()
    if head in ("averse", "seeking"):
        if not sep or not arg:
            raise SettingError(f"setting {raw!r}: {head} needs an alpha, e.g. '{head}:0.1'")
        alpha = _alpha(arg, raw)
        if alpha == RISK_NEUTRAL_ALPHA:
            return _neutral()   # alpha = 1 is the same planner in both modes: one key, not two
        return Setting(f"{head}:{alpha:g}", "planner", alpha=alpha, risk_mode=head)
    if head == "neutral":
        if sep and _alpha(arg, raw) != RISK_NEUTRAL_ALPHA:
            raise SettingError(f"setting {raw!r}: neutral means alpha = 1; use averse:ALPHA or seeking:ALPHA "
                               f"for other levels")
        return _neutral()
    if head == "unguided":
        if sep:
            raise SettingError(f"setting {raw!r}: unguided takes no argument")
        return Setting("unguided", "planner", alpha=RISK_NEUTRAL_ALPHA, risk_mode="averse",
                       planner_overrides=dict(UNGUIDED_PLANNER_SETTINGS))
    if head == "bc":
        if sep and not arg:
            raise SettingError(f"setting {raw!r}: bc:PATH needs a path to a behaviour-cloning checkpoint")
        return Setting(f"bc:{arg}" if arg else "bc", "behaviour_cloning", checkpoint=Path(arg) if arg else None)
    if head == "scripted":
        from risky_nav.policies import POLICY_NAMES

        if arg not in POLICY_NAMES:
            raise SettingError(f"setting {raw!r}: scripted needs one of {', '.join(POLICY_NAMES)}, "
                               f"e.g. 'scripted:detour'")
        return Setting(f"scripted:{arg}", "scripted", policy=arg)
    raise SettingError(f"setting {raw!r}: unknown kind {head!r}; settings are {SETTINGS_HELP}")


def parse_settings(texts: list[str]) -> list[Setting]:
    if not texts:
        raise SettingError(f"no settings given; settings are {SETTINGS_HELP}")
    settings = [parse_setting(t) for t in texts]
    seen: dict[str, str] = {}
    for text, s in zip(texts, settings):
        if s.name in seen:
            raise SettingError(f"setting {text!r} repeats {seen[s.name]!r} (both are {s.name})")
        seen[s.name] = text
    return settings


def _neutral() -> Setting:
    return Setting("neutral", "planner", alpha=RISK_NEUTRAL_ALPHA, risk_mode="averse")


def _alpha(text: str, raw: str) -> float:
    try:
        alpha = float(text)
    except ValueError:
        raise SettingError(f"setting {raw!r}: alpha {text!r} is not a number") from None
    if not (math.isfinite(alpha) and 0.0 < alpha <= 1.0):
        raise SettingError(f"setting {raw!r}: alpha must be in (0, 1] (1 = risk-neutral), got {alpha:g}")
    return alpha
