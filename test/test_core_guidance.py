"""Guided sampling on analytic stand-ins: guidance raises the risk measure, alpha moves plans,
the start state is inpainted exactly, seeds reproduce, a costmap pushes plans off obstacles."""
import numpy as np
import pytest
import torch
from test_core_helpers import GaussianDenoiser, RiskyBandCritic, tiny_config, single_thread  # noqa: F401 (autouse fixture)

from rs_diffuser_ros.core.costmap import Costmap
from rs_diffuser_ros.core.models.inverse_dynamics import InverseDynamics
from rs_diffuser_ros.core.normalizer import LimitsNormalizer, Normalizers, StandardNormalizer
from rs_diffuser_ros.core.objective import PlanObjective, RiskTerm
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.core.risk import risk_measure
from rs_diffuser_ros.core.sampling.guidance import RiskGuidance
from rs_diffuser_ros.core.sampling.sampler import ddim_sample

START = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0], np.float32)
GOAL = np.array([0.5, 0.0], np.float32)


def toy_planner(critic=None, **planner) -> RiskSensitivePlanner:
    cfg = tiny_config()
    torch.manual_seed(0)
    networks = {"denoiser": GaussianDenoiser(cfg.model.diffusion_steps),
                "critic": critic if critic is not None else RiskyBandCritic(cfg.model.n_quantiles),
                "inverse_dynamics": InverseDynamics(6, 2, 16)}
    unit = LimitsNormalizer(-torch.ones(2), torch.ones(2))
    identity = Normalizers(LimitsNormalizer(-torch.ones(6), torch.ones(6)), unit, unit, unit, StandardNormalizer(0.0, 1.0))
    p = RiskSensitivePlanner(cfg, networks, identity, "cpu")
    p.configure(**{"candidates": 64, "ddim_steps": 8, "guidance_scale": 3.0, **planner})
    return p


def mean_y(result) -> float:
    return float(result.candidates[:, 1:, 1].mean())


def clean_risk(planner, result, alpha, mode) -> np.ndarray:
    x = torch.as_tensor(result.candidates)  # START is the origin: world and plan frame coincide
    q = planner.critic(x, torch.zeros(len(x), 4), torch.zeros(len(x)))
    return risk_measure(q, alpha, mode).numpy()


@pytest.mark.parametrize("alpha,mode", [(0.1, "averse"), (1.0, "averse"), (0.2, "seeking")])
@pytest.mark.parametrize("guidance_on", ["noisy", "x0"])
def test_guidance_raises_the_chosen_risk_measure(alpha, mode, guidance_on):
    # Through the denoiser (x0 mode) the gradient is damped by d x0_hat / d x_t (= sqrt(alpha_bar) for
    # this denoiser, small while noise dominates), so that mode needs a larger scale for the same push.
    scale = {"noisy": 3.0, "x0": 10.0}[guidance_on]
    guided = toy_planner(guidance_on=guidance_on, guidance_scale=scale).plan(START, GOAL, alpha, mode, seed=1)
    unguided = toy_planner(guidance_scale=0.0).plan(START, GOAL, alpha, mode, seed=1)
    g, u = clean_risk(guided_p := toy_planner(), guided, alpha, mode), clean_risk(guided_p, unguided, alpha, mode)
    assert g.mean() > u.mean() + 0.05, (g.mean(), u.mean())
    assert g.max() >= u.max()  # best-of-K after guidance at least as good
    np.testing.assert_allclose(guided.risk_values, g, atol=1e-5)  # reported values are those of the candidates
    assert guided.risk_values[guided.chosen_index] == pytest.approx(guided.risk_values.max())


def test_lower_alpha_moves_plans_away_from_the_high_variance_region():
    planner = toy_planner()
    averse = planner.plan(START, GOAL, 0.05, "averse", seed=2)
    neutral = planner.plan(START, GOAL, 1.0, "averse", seed=2)
    seeking = planner.plan(START, GOAL, 0.05, "seeking", seed=2)
    # The high-variance region is +y: neutral goes there for the higher mean, averse leaves it.
    assert mean_y(averse) < -0.1 < 0.1 < mean_y(neutral) <= mean_y(seeking) + 1e-6
    assert averse.plan[1:, 1].mean() < 0 < neutral.plan[1:, 1].mean()


def test_noisy_guidance_never_backprops_through_the_denoiser_and_x0_guidance_does():
    """The documented choice: guidance reads the noise-conditioned critic on x_t (cheap);
    the x0 alternative needs autograd through the U-Net at every step."""
    calls = {"noisy": [], "x0": []}
    for mode in calls:
        planner = toy_planner(guidance_on=mode)
        denoise = planner.denoiser.forward
        planner.denoiser.forward = lambda x, t, g, _d=denoise, _c=calls[mode]: (_c.append(torch.is_grad_enabled()), _d(x, t, g))[1]
        planner.plan(START, GOAL, 0.1, seed=0)
    assert calls["noisy"] and not any(calls["noisy"])
    assert calls["x0"] and all(calls["x0"])


def test_noisy_guidance_passes_the_sampler_noise_level_to_the_critic():
    seen = []

    class RecordingCritic(RiskyBandCritic):
        def forward(self, window, context, noise_level):
            seen.append(noise_level.detach().clone())
            return super().forward(window, context, noise_level)

    planner = toy_planner(critic=RecordingCritic(8))
    planner.plan(START, GOAL, 0.1, seed=0)
    levels = [float(s[0]) for s in seen]
    expected = planner.schedule.sqrt_one_minus_ab.tolist()
    np.testing.assert_allclose(levels[:-1], expected, rtol=1e-6)  # one per DDIM step, noisiest first
    assert levels[-1] == 0.0  # selection reads clean plans


@pytest.mark.parametrize("guidance_on", ["noisy", "x0"])
def test_inpainting_holds_the_start_state_exactly_at_every_step(guidance_on):
    planner = toy_planner(guidance_on=guidance_on)
    start = torch.tensor([[0.3, -0.7, 0.1, 0.99, 0.5, -0.2]]).repeat(16, 1)
    context = torch.zeros(16, 4)
    guidance = RiskGuidance(PlanObjective(RiskTerm(planner.critic, torch.full((16,), 0.1), "averse")), 5.0, 1.0, guidance_on)
    seen = []
    x = ddim_sample(planner.denoiser, planner.schedule, start, context, 8, guidance,
                    torch.Generator().manual_seed(0), on_step=lambda i, x: seen.append(x[:, 0].clone()))
    assert len(seen) == planner.schedule.n_sample_steps
    for first in seen:
        assert torch.equal(first, start)
    assert not torch.equal(x[:, 1], start)  # the rest did move


def test_planner_plan_starts_at_the_given_state():
    planner = RiskSensitivePlanner.from_config(tiny_config(), device="cpu")
    state = np.array([1.5, -2.0, 0.6, 0.8, 0.3, 0.1], np.float32)
    r = planner.plan(state, [3.0, 1.0], 0.2, seed=0)
    np.testing.assert_array_equal(r.plan[0], state)
    np.testing.assert_array_equal(r.candidates[:, 0], np.broadcast_to(state, (4, 6)))


def test_seeded_sampling_is_reproducible():
    planner = RiskSensitivePlanner.from_config(tiny_config(), device="cpu")
    a = planner.plan(START, GOAL, 0.1, seed=7)
    b = planner.plan(START, GOAL, 0.1, seed=7)
    c = planner.plan(START, GOAL, 0.1, seed=8)
    np.testing.assert_array_equal(a.candidates, b.candidates)
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.quantiles, b.quantiles)
    assert a.chosen_index == b.chosen_index
    assert not np.array_equal(a.candidates, c.candidates)
    # Unseeded calls draw from the planner's own stream: successive plans differ.
    assert not np.array_equal(planner.plan(START, GOAL, 0.1).candidates, planner.plan(START, GOAL, 0.1).candidates)


def test_plan_batch_matches_shapes_and_per_state_alpha():
    planner = toy_planner(candidates=32)
    states = np.stack([START, START])
    results = planner.plan_batch(states, np.stack([GOAL, GOAL]), alpha=[0.05, 1.0], seed=3)
    assert len(results) == 2
    for r in results:
        assert r.action.shape == (2,) and r.plan.shape == (8, 6) and r.candidates.shape == (32, 8, 6)
        assert r.risk_values.shape == (32,) and r.quantiles.shape == (8,)
        assert r.expected_return == pytest.approx(float(r.quantiles.mean()))
    assert mean_y(results[0]) < mean_y(results[1])


def test_a_live_costmap_pushes_plans_off_obstacles():
    class FlatCritic(torch.nn.Module):  # no preference: only the costmap shapes the plans
        def forward(self, window, context, noise_level):
            return torch.zeros(len(window), 8) + 0 * window.sum((1, 2))[:, None]

    planner = toy_planner(critic=FlatCritic(), costmap_weight=3.0)
    # An obstacle over the upper half (y > 0.1) of a 4 m x 4 m map centred on the robot.
    occupancy = np.zeros((80, 80), np.int8)
    occupancy[42:, :] = 100
    costmap = Costmap.from_occupancy(occupancy, 0.05, -2.0, -2.0, inflation_radius=0.3)
    free = planner.plan(START, GOAL, 1.0, seed=4)
    pushed = planner.plan(START, GOAL, 1.0, costmap=costmap, seed=4)

    def cost(plans):
        return costmap.lookup(torch.as_tensor(plans[..., :2])).mean(-1).numpy()

    assert cost(pushed.candidates).mean() < 0.6 * cost(free.candidates).mean()
    assert cost(pushed.plan) <= cost(free.plan)
    assert mean_y(pushed) < mean_y(free) - 0.1


@pytest.mark.parametrize("state,match", [
    (np.zeros(5), r"state must have shape \[6\] \(model.state_dim"),
    (np.zeros((1, 6)), "state must have shape"),
    (np.array([0, 0, 0, 1, 0, np.nan]), "state has non-finite"),
])
def test_bad_state_is_rejected_with_a_clear_error(state, match):
    with pytest.raises(ValueError, match=match):
        toy_planner().plan(state, GOAL, 0.1)


@pytest.mark.parametrize("alpha", [0.0, 1.0001, float("nan"), -1.0])
def test_bad_alpha_is_rejected_by_the_planner(alpha):
    with pytest.raises(ValueError, match="alpha"):
        toy_planner().plan(START, GOAL, alpha)


def test_bad_risk_mode_and_goal_are_rejected():
    with pytest.raises(ValueError, match="risk_mode"):
        toy_planner().plan(START, GOAL, 0.1, risk_mode="neutral")
    with pytest.raises(ValueError, match="goal must have shape"):
        toy_planner().plan(START, [1.0, 2.0, 3.0], 0.1)
    with pytest.raises(ValueError, match="alpha must be a float or one per state"):
        toy_planner().plan_batch(np.stack([START] * 3), np.stack([GOAL] * 3), alpha=[0.1, 0.2])


def test_an_admissibility_predicate_restricts_the_choice_to_the_best_scoring_admitted_candidate():
    """What a hard collision check hands plan_batch: the pick is the best admitted one, the unrestricted
    best is still reported, and when nothing is admitted the result says so."""
    planner = RiskSensitivePlanner.from_config(tiny_config(), device="cpu", seed=0)
    planner.configure(candidates=6)
    state, goal = np.array([[1.0, 1.0, 0.0, 1.0, 0.0, 0.0]], np.float32), np.array([[3.0, 1.0]], np.float32)
    free = planner.plan_batch(state, goal, seed=3)[0]
    order = np.argsort(-free.scores)

    def all_but_the_best(plans, actions):
        allowed = torch.ones(plans.shape[:2], dtype=torch.bool)
        allowed[0, int(order[0])] = False
        return allowed

    restricted = planner.plan_batch(state, goal, seed=3, admissible=all_but_the_best)[0]
    assert restricted.chosen_index == order[1] and restricted.best_scoring == order[0] == free.chosen_index
    np.testing.assert_array_equal(restricted.action, free.candidate_actions[order[1]])
    assert restricted.admissible.sum() == 5
    nothing = planner.plan_batch(state, goal, seed=3, admissible=lambda p, a: torch.zeros(p.shape[:2], dtype=torch.bool))[0]
    assert not nothing.admissible.any() and nothing.chosen_index == free.chosen_index


def test_each_state_of_a_batch_gets_its_own_rows_of_every_result_field():
    """plan_batch slices all states' results out of shared arrays: each one's chosen plan, action, quantiles,
    admissibility and best candidate must be its own state's, with a different restriction per state."""
    planner = RiskSensitivePlanner.from_config(tiny_config(), device="cpu", seed=0)
    planner.configure(candidates=5)
    states = np.array([[1.0, 1.0, 0.0, 1.0, 0.0, 0.0], [2.0, -1.0, 0.0, 1.0, 0.0, 0.0],
                       [-1.0, 0.5, 1.0, 0.0, 0.0, 0.0]], np.float32)
    goals = np.array([[3.0, 1.0], [0.0, 0.0], [-2.0, 2.0]], np.float32)
    free = planner.plan_batch(states, goals, seed=3)
    banned = [int(r.chosen_index) for r in free]  # each state's own favourite is ruled out

    def not_the_favourite(plans, actions):
        allowed = torch.ones(plans.shape[:2], dtype=torch.bool)
        allowed[torch.arange(len(banned)), torch.tensor(banned)] = False
        return allowed

    results = planner.plan_batch(states, goals, seed=3, admissible=not_the_favourite)
    assert len(results) == 3
    for b, (r, f) in enumerate(zip(results, free)):
        np.testing.assert_array_equal(r.candidates[:, 0], np.repeat(states[b:b + 1], 5, 0))
        np.testing.assert_array_equal(r.scores, f.scores)
        assert r.best_scoring == int(np.argmax(r.scores)) == banned[b]
        np.testing.assert_array_equal(r.admissible, np.arange(5) != banned[b])
        assert r.chosen_index == int(np.argmax(np.where(r.admissible, r.scores, -np.inf)))
        np.testing.assert_array_equal(r.action, r.candidate_actions[r.chosen_index])
        np.testing.assert_array_equal(r.plan, r.candidates[r.chosen_index])
        assert isinstance(r.chosen_index, int) and isinstance(r.best_scoring, int)
        assert r.expected_return == pytest.approx(float(r.quantiles.mean()))
    with pytest.raises(ValueError, match="got 1.5"):  # a bad alpha is refused wherever it stands among the states
        planner.plan_batch(states, goals, alpha=[0.1, 0.1, 1.5])


def test_a_carried_plan_replaces_the_last_candidate_and_is_judged_like_a_fresh_one():
    """Commitment over replans: a plan from an earlier replan takes each state's last candidate row, gets the score
    it would get as a fresh candidate, and is chosen exactly when it scores best; a state with none keeps its own."""
    planner = RiskSensitivePlanner.from_config(tiny_config(), device="cpu", seed=0)
    planner.configure(candidates=6)
    states = np.array([[1.0, 1.0, 0.0, 1.0, 0.0, 0.0], [2.0, -1.0, 0.0, 1.0, 0.0, 0.0]], np.float32)
    goals = np.array([[3.0, 1.0], [0.0, 0.0]], np.float32)
    earlier = planner.plan_batch(states, goals, seed=1)
    worst = int(np.argmin(earlier[0].scores))
    for pick, expect_chosen in ((earlier[0].best_scoring, True), (worst, False)):
        carried = np.stack([earlier[0].candidates[pick], np.full_like(earlier[1].plan, np.nan)])
        fresh = planner.plan_batch(states, goals, seed=2)
        now = planner.plan_batch(states, goals, seed=2, carried=carried)
        np.testing.assert_allclose(now[0].candidates[-1], carried[0], atol=1e-5)
        assert now[0].scores[-1] == pytest.approx(earlier[0].scores[pick], abs=1e-4)
        np.testing.assert_array_equal(now[0].candidates[:-1], fresh[0].candidates[:-1])  # the fresh ones are untouched
        np.testing.assert_array_equal(now[1].candidates, fresh[1].candidates)            # NaN: nothing carried
        carried_wins = earlier[0].scores[pick] > fresh[0].scores[:-1].max()
        assert (now[0].chosen_index == 5) == carried_wins
        if expect_chosen:
            assert now[0].scores.max() >= earlier[0].scores[pick] - 1e-4
        else:
            assert now[0].chosen_index != 5
    with pytest.raises(ValueError, match=r"carried must be \[B, H, D\]"):
        planner.plan_batch(states, goals, carried=carried[:, :3])
