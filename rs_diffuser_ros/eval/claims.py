"""The issue's "must show" claims, checked on one layout's results: each holds, fails, or cannot be
checked because a setting it needs was not evaluated. Nothing is rounded in a claim's favour."""
from __future__ import annotations

from dataclasses import dataclass

from rs_diffuser_ros.eval.metrics import Estimate

AVERSE, SEEKING, NEUTRAL = "averse:0.1", "seeking:0.1", "neutral"
MIN_SUCCESS = 0.9


@dataclass
class Claim:
    text: str
    holds: bool | None        # None: not checkable with the settings evaluated
    detail: str

    def to_dict(self) -> dict:
        return {"claim": self.text, "holds": self.holds, "detail": self.detail}

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "FAILS", None: "not checked"}[self.holds]


def _fmt(e: Estimate, pct: bool = False) -> str:
    if pct:
        return f"{100 * e.value:.1f}% [{100 * e.low:.1f}, {100 * e.high:.1f}]"
    return f"{e.value:.2f} [{e.low:.2f}, {e.high:.2f}]"


def _missing(text: str, *names: str) -> Claim:
    return Claim(text, None, f"needs settings {', '.join(names)}")


def check_claims(settings: list, summaries: dict[str, dict[str, Estimate]]) -> list[Claim]:
    have = set(summaries)
    claims = []

    text = "averse alpha=0.1: violation rate at most half of alpha=1's"
    if {AVERSE, NEUTRAL} <= have:
        a, n = summaries[AVERSE]["violation_rate"], summaries[NEUTRAL]["violation_rate"]
        claims.append(Claim(text, a.value <= 0.5 * n.value, f"{_fmt(a, True)} vs {_fmt(n, True)}"))
    else:
        claims.append(_missing(text, AVERSE, NEUTRAL))

    text = "averse alpha=0.1: CVaR_0.1 of return above alpha=1's, confidence intervals not overlapping"
    if {AVERSE, NEUTRAL} <= have:
        a, n = summaries[AVERSE]["cvar_return"], summaries[NEUTRAL]["cvar_return"]
        claims.append(Claim(text, a.low > n.high, f"{_fmt(a)} vs {_fmt(n)}"))
    else:
        claims.append(_missing(text, AVERSE, NEUTRAL))

    text = "seeking alpha=0.1: violation rate at least alpha=1's"
    if {SEEKING, NEUTRAL} <= have:
        s, n = summaries[SEEKING]["violation_rate"], summaries[NEUTRAL]["violation_rate"]
        claims.append(Claim(text, s.value >= n.value, f"{_fmt(s, True)} vs {_fmt(n, True)}"))
    else:
        claims.append(_missing(text, SEEKING, NEUTRAL))

    text = f"success rate >= {MIN_SUCCESS:.0%} at every alpha"
    guided = [s.name for s in settings if s.is_rs_diffuser]
    if guided:
        rates = {name: summaries[name]["success_rate"] for name in guided}
        failing = [name for name, r in rates.items() if r.value < MIN_SUCCESS]
        detail = "; ".join(f"{name} {100 * r.value:.1f}%" for name, r in rates.items())
        claims.append(Claim(text, not failing, detail))
    else:
        claims.append(_missing(text, "averse:ALPHA / seeking:ALPHA / neutral"))

    # Issue 16's bar: above each baseline with the intervals apart (a higher mean alone, as before, let an
    # interval of [-13.5, 0.1] "beat" one of [-10.0, -7.7]).
    text = "RS-Diffuser (averse alpha=0.1): CVaR_0.1 of return above every baseline's, its interval above theirs"
    baselines = [s.name for s in settings if s.is_baseline or s.name == NEUTRAL]
    if AVERSE in have and baselines:
        ours = summaries[AVERSE]["cvar_return"]
        below = [b for b in baselines if not ours.low > summaries[b]["cvar_return"].high]
        detail = f"{AVERSE} {_fmt(ours)}; " + "; ".join(f"{b} {_fmt(summaries[b]['cvar_return'])}" for b in baselines)
        claims.append(Claim(text, not below, detail))
    else:
        claims.append(_missing(text, AVERSE, "neutral / unguided / bc"))
    return claims
