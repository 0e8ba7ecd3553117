"""The claim verdicts on hand-made results: each claim must hold where the numbers say so, fail where
they do not (boundaries included), and be 'not checked' when a setting it needs is missing."""
import pytest

from rs_diffuser_ros.eval.claims import check_claims
from rs_diffuser_ros.eval.metrics import Estimate
from rs_diffuser_ros.eval.settings import parse_settings

# A phrase of each claim's text -> the key used below.
CLAIMS = {
    "half": "violation rate at most half",
    "cvar_ci": "confidence intervals not overlapping",
    "seeking": "seeking alpha=0.1: violation rate at least",
    "success": "success rate >=",
    "baselines": "above every baseline",
}


def point(value, half_width=0.0):
    return Estimate(value, value - half_width, value + half_width)


def summary(violation=0.0, cvar=(0.0, 0.0, 0.0), success=1.0):
    """The metrics the claims read; cvar is (value, low, high)."""
    return {"violation_rate": point(violation), "cvar_return": Estimate(*cvar), "success_rate": point(success)}


def verdicts(summaries):
    settings = parse_settings(list(summaries))
    claims = check_claims(settings, summaries)
    found = {}
    for key, phrase in CLAIMS.items():
        matching = [c for c in claims if phrase in c.text]
        assert len(matching) == 1, f"claim '{phrase}': {len(matching)} matches among {[c.text for c in claims]}"
        found[key] = matching[0]
    assert len(claims) == len(CLAIMS), [c.text for c in claims]
    return {key: c.holds for key, c in found.items()}, found


def test_every_claim_holds_on_results_that_satisfy_it():
    holds, _ = verdicts({
        "averse:0.1": summary(violation=0.04, cvar=(5.0, 4.0, 6.0), success=0.95),
        "neutral": summary(violation=0.10, cvar=(2.0, 1.0, 3.0), success=0.92),
        "seeking:0.1": summary(violation=0.30, cvar=(-1.0, -2.0, 0.0), success=0.90),   # 0.90: exactly the bar
        "unguided": summary(violation=0.5, cvar=(1.0, 0.0, 2.0), success=0.5),           # a baseline may fail
        "bc": summary(violation=0.6, cvar=(3.5, 3.0, 3.9), success=0.4),            # its interval below ours
    })
    assert holds == {"half": True, "cvar_ci": True, "seeking": True, "success": True, "baselines": True}


def test_every_claim_fails_on_results_that_break_it():
    holds, claims = verdicts({
        "averse:0.1": summary(violation=0.051, cvar=(5.0, 2.9, 6.0), success=0.95),   # just over half of 0.10
        "neutral": summary(violation=0.10, cvar=(2.0, 1.0, 3.0), success=0.95),        # CIs overlap at [2.9, 3.0]
        "seeking:0.1": summary(violation=0.09, cvar=(0.0, -1.0, 1.0), success=0.89),   # safer than neutral; < 90%
        "bc": summary(cvar=(5.0, 4.0, 6.0)),                                           # ties ours: not above it
    })
    assert holds == {"half": False, "cvar_ci": False, "seeking": False, "success": False, "baselines": False}
    assert "seeking:0.1 89.0%" in claims["success"].detail
    assert claims["half"].verdict == "FAILS"


def test_boundaries_are_not_rounded_in_the_claims_favour():
    # exactly half holds; intervals touching (low == high) overlap, so that claim fails
    holds, _ = verdicts({
        "averse:0.1": summary(violation=0.05, cvar=(4.0, 3.0, 5.0)),
        "neutral": summary(violation=0.10, cvar=(2.0, 1.0, 3.0)),
    })
    assert holds["half"] is True and holds["cvar_ci"] is False


def test_only_real_baselines_count_against_the_averse_planner():
    # scripted policies and other risk levels of the same planner are not baselines
    holds, claims = verdicts({
        "averse:0.1": summary(cvar=(3.0, 2.0, 4.0)),
        "averse:0.05": summary(cvar=(9.0, 8.0, 10.0)),
        "scripted:detour": summary(cvar=(9.0, 8.0, 10.0)),
        "neutral": summary(cvar=(1.0, 0.0, 1.9)),
    })
    assert holds["baselines"] is True
    assert "neutral" in claims["baselines"].detail and "scripted" not in claims["baselines"].detail


def test_claims_without_the_settings_they_need_are_not_checked():
    holds, claims = verdicts({"scripted:detour": summary(), "scripted:shortcut": summary(violation=1.0)})
    assert holds == dict.fromkeys(CLAIMS, None)
    assert claims["half"].verdict == "not checked" and "averse:0.1" in claims["half"].detail

    holds, _ = verdicts({"averse:0.1": summary(violation=0.0, cvar=(5.0, 4.0, 6.0)),
                         "neutral": summary(violation=0.2, cvar=(1.0, 0.0, 2.0))})
    assert holds == {"half": True, "cvar_ci": True, "seeking": None, "success": True, "baselines": True}


@pytest.mark.parametrize("averse, neutral, expected", [(0.0, 0.0, True), (0.01, 0.0, False)])
def test_a_neutral_planner_that_never_violates_leaves_no_room(averse, neutral, expected):
    holds, _ = verdicts({"averse:0.1": summary(violation=averse), "neutral": summary(violation=neutral)})
    assert holds["half"] is expected


def test_a_higher_mean_with_overlapping_intervals_does_not_beat_a_baseline():
    # issue 16: "higher CVaR_0.1 than CODAC and O-RAAC (CIs not overlapping)"; touching intervals overlap
    common = {"neutral": summary(cvar=(-30.0, -35.0, -25.0))}
    holds, claims = verdicts({"averse:0.1": summary(cvar=(-5.9, -13.5, 0.1)), "oraac": summary(cvar=(-9.0, -10.0, -7.7)),
                              **common})
    assert holds["baselines"] is False and "oraac -9.00 [-10.00, -7.70]" in claims["baselines"].detail
    holds, _ = verdicts({"averse:0.1": summary(cvar=(-5.0, -7.7, -2.0)), "oraac": summary(cvar=(-9.0, -10.0, -7.7)),
                         **common})
    assert holds["baselines"] is False
    holds, _ = verdicts({"averse:0.1": summary(cvar=(-5.0, -7.6, -2.0)), "oraac": summary(cvar=(-9.0, -10.0, -7.7)),
                         **common})
    assert holds["baselines"] is True
