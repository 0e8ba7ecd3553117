"""Evaluation settings: what is evaluated, given as short strings on the command line.

    averse:0.1     RS-Diffuser through the shared controller, CVaR_0.1 of the lower tail guides and selects
    seeking:0.1    RS-Diffuser, mean of the upper 10% tail (risk-seeking)
    neutral        RS-Diffuser at alpha = 1 (Diffuser-style value guidance); `neutral:1.0` too
    unguided       the same checkpoint, one sample, no guidance (Decision-Diffuser style)
    bc             behaviour cloning (--bc-checkpoint), or bc:PATH for another checkpoint; a per-layout policy
                   (obs in the map's coordinates) or a map-conditioned one (any map: it reads the costmap and risk layer)
    codac, oraac   the risk-averse offline RL baselines (--codac-checkpoint, --oraac-checkpoint), or codac:PATH ...
    checked:bc     a learned baseline (bc, codac, oraac, with :PATH as above) behind the shipped controller: its command
                   passes the same collision check, and the controller's recovery drives where it does not
                   (baselines/policy_planner.py); the plain setting is the policy alone, as papers evaluate it
    scripted:NAME  a scripted risky_nav policy (shortcut, detour, ...): what the dataset was made of

Each kind of setting is a policy kind with `label`, `validate(config)` and `make_policy(context)`,
so the runner and the reports never branch on the kind. A new baseline is one more class and one
more entry in PARSERS.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from risky_nav.policies import POLICY_NAMES

from rs_diffuser_ros.baselines import behaviour_cloning, codac, oraac
from rs_diffuser_ros.baselines.diffusion_variants import RISK_NEUTRAL_ALPHA, UNGUIDED_PLANNER_SETTINGS
from rs_diffuser_ros.baselines.policy_planner import PolicyPlanner
from rs_diffuser_ros.core.config import PlannerConfig
from rs_diffuser_ros.core.setting_spec import check_field
from rs_diffuser_ros.eval.policies import ControllerPolicy, LearnedBatchPolicy, PolicyContext, ScriptedBatchPolicy


class SettingError(ValueError):
    """An evaluation setting string that cannot be parsed."""


@dataclass(frozen=True)
class PlannerSetting:
    """RS-Diffuser (or a diffusion baseline made of its checkpoint) driven through the shared controller."""

    name: str
    alpha: float
    risk_mode: str = "averse"
    controller_overrides: dict = field(default_factory=dict, hash=False, compare=False)  # ControllerSettings fields
    kind = "planner"
    uses_planner = True

    @property
    def is_rs_diffuser(self) -> bool:
        """Guided by a risk measure at some alpha (averse, seeking or neutral), not a baseline."""
        return not self.controller_overrides

    @property
    def is_baseline(self) -> bool:
        return not self.is_rs_diffuser

    @property
    def label(self) -> str:
        if self.controller_overrides:
            return "unguided diffusion"
        return "neutral (alpha=1)" if self.alpha == RISK_NEUTRAL_ALPHA else f"{self.risk_mode} alpha={self.alpha:g}"

    def validate(self, config) -> None:
        config.controller_settings(self)  # raises naming the value that does not fit

    def make_policy(self, context: PolicyContext) -> ControllerPolicy:
        return context.controller_policy(context.planner(), context.config.controller_settings(self))

    def describe(self) -> dict:
        return {"alpha": self.alpha, "risk_mode": self.risk_mode, "controller_overrides": self.controller_overrides}


@dataclass(frozen=True)
class LearnedPolicySetting:
    """An offline-RL or imitation baseline: a checkpoint whose policy maps observations to actions."""

    name: str
    kind: str  # behaviour_cloning, ...
    label: str
    load: Callable = field(hash=False, compare=False)
    checkpoint: Path | None = None  # None: the evaluation's default for this kind
    is_rs_diffuser = False
    is_baseline = True
    uses_planner = False

    def path(self, config) -> Path:
        return Path(self.checkpoint or config.learned_checkpoints[self.kind])

    def validate(self, config) -> None:
        path = self.path(config)
        if not path.is_file():
            raise FileNotFoundError(f"setting {self.name!r}: {self.label} checkpoint {path} not found (train one: python -m "
                                    f"{self.load.__module__} --dataset ... --out ...; then pass it as {self.name}:PATH)")
        self.load(path)

    def make_policy(self, context: PolicyContext) -> LearnedBatchPolicy:
        return LearnedBatchPolicy.in_context(self.load(self.path(context.config)), context)

    def describe(self) -> dict:
        return {"checkpoint": str(self.checkpoint) if self.checkpoint else None}


@dataclass(frozen=True)
class CheckedPolicySetting:
    """A learned baseline's policy driven through the shipped controller (its collision check and recovery): what the
    policy decides, apart from the safety layer RS-Diffuser runs behind."""

    inner: LearnedPolicySetting
    kind = "checked"
    is_rs_diffuser = False
    is_baseline = True
    uses_planner = False  # it needs no RS-Diffuser checkpoint: the policy is the controller's planner
    alpha = RISK_NEUTRAL_ALPHA  # what the controller settings are built with (a policy reads neither)
    risk_mode = "averse"
    controller_overrides: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def name(self) -> str:
        return f"checked:{self.inner.name}"

    @property
    def label(self) -> str:
        return f"{self.inner.label}, behind the controller's check"

    def validate(self, config) -> None:
        self.inner.validate(config)
        config.controller_settings(self)

    def make_policy(self, context: PolicyContext) -> ControllerPolicy:
        planner = PolicyPlanner(self.inner.load(self.inner.path(context.config)), context.device)
        return context.controller_policy(planner, context.config.controller_settings(self))

    def describe(self) -> dict:
        return {**self.inner.describe(), "behind": "the shipped controller (collision check, recovery)"}


@dataclass(frozen=True)
class ScriptedSetting:
    """A scripted risky_nav policy (the behaviours the dataset was made of): not a baseline of the claims."""

    name: str
    policy: str
    kind = "scripted"
    is_rs_diffuser = False
    is_baseline = False
    uses_planner = False

    @property
    def label(self) -> str:
        return f"scripted {self.policy}"

    def validate(self, config) -> None:
        pass  # the name was checked when parsed

    def make_policy(self, context: PolicyContext) -> ScriptedBatchPolicy:
        return ScriptedBatchPolicy(self.policy, context.layout, len(context.envs), seed=context.stream)

    def describe(self) -> dict:
        return {"policy": self.policy}


# Learned baselines: setting head -> (kind, label, loader). The evaluation's default checkpoint for
# each kind is EvalConfig.learned_checkpoints[kind].
LEARNED = {"bc": ("behaviour_cloning", "behaviour cloning", behaviour_cloning.load),
           "codac": ("codac", "CODAC", codac.load),
           "oraac": ("oraac", "O-RAAC", oraac.load)}

SETTINGS_HELP = ("averse:ALPHA, seeking:ALPHA, neutral, unguided, " + ", ".join(f"{h}, {h}:PATH" for h in LEARNED)
                 + ", checked:<one of those>, scripted:NAME (ALPHA in (0, 1]; e.g. averse:0.05 neutral seeking:0.1 bc "
                 "checked:bc unguided)")


def _risk(head: str, arg: str, raw: str):
    if not arg:
        raise SettingError(f"setting {raw!r}: {head} needs an alpha, e.g. '{head}:0.1'")
    alpha = _alpha(arg, raw)
    if alpha == RISK_NEUTRAL_ALPHA:
        return _neutral()  # alpha = 1 is the same planner in both modes: one key, not two
    return PlannerSetting(f"{head}:{alpha:g}", alpha, head)


def _neutral_setting(head: str, arg: str, raw: str):
    if arg is not None and _alpha(arg, raw) != RISK_NEUTRAL_ALPHA:
        raise SettingError(f"setting {raw!r}: neutral means alpha = 1; use averse:ALPHA or seeking:ALPHA for other levels")
    return _neutral()


def _unguided(head: str, arg: str, raw: str):
    if arg is not None:
        raise SettingError(f"setting {raw!r}: unguided takes no argument")
    return PlannerSetting("unguided", RISK_NEUTRAL_ALPHA, "averse", dict(UNGUIDED_PLANNER_SETTINGS))


def _scripted(head: str, arg: str, raw: str):
    if arg not in POLICY_NAMES:
        raise SettingError(f"setting {raw!r}: scripted needs one of {', '.join(POLICY_NAMES)}, e.g. 'scripted:detour'")
    return ScriptedSetting(f"scripted:{arg}", arg)


def _learned(head: str, arg: str, raw: str):
    kind, label, load = LEARNED[head]
    if arg == "":
        raise SettingError(f"setting {raw!r}: {head}:PATH needs a path to a {label} checkpoint")
    return LearnedPolicySetting(f"{head}:{arg}" if arg else head, kind, label, load, Path(arg) if arg else None)


def _checked(head: str, arg: str, raw: str):
    if not arg:
        raise SettingError(f"setting {raw!r}: checked needs a learned baseline after it, e.g. 'checked:bc'")
    inner = parse_setting(arg)
    if not isinstance(inner, LearnedPolicySetting):
        raise SettingError(f"setting {raw!r}: checked takes a learned baseline ({', '.join(LEARNED)}, or one with "
                           ":PATH), e.g. 'checked:bc'")
    return CheckedPolicySetting(inner)


PARSERS = {"averse": _risk, "seeking": _risk, "neutral": _neutral_setting, "unguided": _unguided,
           "scripted": _scripted, "checked": _checked, **{head: _learned for head in LEARNED}}


def parse_setting(text: str):
    head, sep, arg = text.strip().partition(":")
    parser = PARSERS.get(head.lower())
    if parser is None:
        raise SettingError(f"setting {text!r}: unknown kind {head.lower()!r}; settings are {SETTINGS_HELP}")
    return parser(head.lower(), arg if sep else None, text)  # None: no ':' at all


def parse_settings(texts: list[str]) -> list:
    if not texts:
        raise SettingError(f"no settings given; settings are {SETTINGS_HELP}")
    settings = [parse_setting(t) for t in texts]
    seen: dict[str, str] = {}
    for text, s in zip(texts, settings):
        if s.name in seen:
            raise SettingError(f"setting {text!r} repeats {seen[s.name]!r} (both are {s.name})")
        seen[s.name] = text
    return settings


def _neutral() -> PlannerSetting:
    return PlannerSetting("neutral", RISK_NEUTRAL_ALPHA, "averse")


def _alpha(text: str, raw: str) -> float:
    try:
        alpha = float(text)
    except ValueError:
        raise SettingError(f"setting {raw!r}: alpha {text!r} is not a number") from None
    reason = check_field(PlannerConfig, "alpha", alpha)
    if reason:
        raise SettingError(f"setting {raw!r}: {reason} (1 = risk-neutral)")
    return alpha


