"""Map-conditioned behaviour cloning: it reads the general model's map input and no absolute position, keeps its
actions inside the dataset's limits, learns a map-dependent mapping, saves and loads exactly, refuses files that
are not its own, trains from a collected maps dataset through the command line and drives an evaluation on a
generated map it never saw."""
import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file
from test_core_helpers import single_thread  # noqa: F401 (autouse fixture)

from rs_diffuser_ros.baselines import behaviour_cloning as bc
from rs_diffuser_ros.baselines import map_behaviour_cloning as mbc
from rs_diffuser_ros.control import Grid
from rs_diffuser_ros.core.config import CoreConfig, ModelConfig
from rs_diffuser_ros.core.map_input import PATCH_CHANNELS, ROUTE_CHANNELS, PlanningMap
from rs_diffuser_ros.core.training.train import DEFAULT_CONFIG
from rs_diffuser_ros.eval.policies import LearnedBatchPolicy, published_grids

RES = 0.1


def small_model() -> ModelConfig:
    """The general model's channels (all seven) on a smaller patch: fast enough for a unit test."""
    model = ModelConfig(map_patch_cells=16, map_patch_m=3.2, map_embedding=16, map_safe_distance=True,
                        map_route_channels=True)
    model.validate("test")
    return model


def grids(origin=(-4.0, -3.0), risky=False, wall=True):
    """An 8 x 6 m map: a wall north-east, and (risky) a hazard of 50 everywhere."""
    rows, cols = 60, 80
    occ = np.zeros((rows, cols), np.int8)
    if wall:
        occ[45:50, 50:70] = 100
    hazard = np.full((rows, cols), 50 if risky else 0, np.int8)
    return Grid(occ, RES, *origin), Grid(hazard, RES, *origin)


def observations(rng, n, offset=(0.0, 0.0), goal=None):
    xy = rng.uniform([-3, -2], [1, 1], (n, 2))
    yaw = rng.uniform(-np.pi, np.pi, n)
    v, w = rng.uniform(0, 0.8, n), rng.uniform(-1.5, 1.5, n)
    g = np.broadcast_to(goal if goal is not None else rng.uniform([-3, -2], [3, 2]), (n, 2))
    obs = np.column_stack([xy, np.sin(yaw), np.cos(yaw), v, w, g]).astype(np.float32)
    obs[:, [0, 1, 6, 7]] += np.array([*offset, *offset], np.float32)
    return obs


def target_action(obs, risky):
    """v from the goal's bearing relative to the robot, omega from the map alone: the map must be read."""
    v = 0.4 + 0.3 * np.tanh(0.5 * (obs[:, 6] - obs[:, 0]))
    omega = np.full(len(obs), -1.0 if risky else 1.0)
    return np.column_stack([v, omega]).astype(np.float32)


def synthetic_episodes(n=8, steps=30, seed=0):
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n):
        risky = bool(i % 2)
        obs = observations(rng, steps + 1)
        episodes.append({"observations": obs, "actions": target_action(obs[:-1], risky), "rewards": np.zeros(steps),
                         "layout": "risky" if risky else "open"})
    return episodes


def fitted_policy(model=None, seed=0, **sizes) -> mbc.MapBehaviourCloningPolicy:
    torch.manual_seed(seed)
    policy = mbc.MapBehaviourCloningPolicy.for_model(model or small_model(), **sizes)
    rng = np.random.default_rng(seed)
    obs = torch.as_tensor(observations(rng, 64))
    actions = torch.as_tensor(np.column_stack([rng.uniform(0, 0.8, 64), rng.uniform(-1.5, 1.5, 64)]), dtype=torch.float32)
    policy.fit_normalization(policy.features(obs[:, :6], obs[:, 6:]), actions)
    return policy.eval()


def test_the_policy_reads_the_general_models_map_input_and_keeps_actions_in_the_datasets_limits():
    model = CoreConfig.from_yaml(DEFAULT_CONFIG).model  # what the general diffusion model reads
    policy = fitted_policy(model, hidden=32, layers=2)
    assert (policy.map_channels, policy.map_patch_cells, policy.map_patch_m) == (model.map_channels, 32, 6.4)
    assert model.map_channels == ROUTE_CHANNELS  # the general model's seven: not the route risk or the severity
    assert policy.map_safe_distance and policy.map_encoder.channels == model.map_channels
    pm = policy.planning_map(*grids(risky=True))
    obs = observations(np.random.default_rng(1), 5)
    assert policy.patches(torch.as_tensor(obs), pm).shape == (5, 7, 32, 32)
    assert mbc.FEATURE_NAMES == ("sin_yaw", "cos_yaw", "v", "omega", "goal_dx", "goal_dy")
    features = policy.features(torch.as_tensor(obs[:, :6]), torch.as_tensor(obs[:, 6:]))
    np.testing.assert_allclose(features.numpy(), np.column_stack([obs[:, 2:6], obs[:, 6:] - obs[:, :2]]), atol=1e-6)
    actions = policy.act(obs, pm)
    assert actions.shape == (5, 2) and actions.dtype == np.float32
    # Saturate the tanh both ways: the actions stay inside the limits fitted on the data, and reach them.
    with torch.no_grad():
        policy.net[-2].weight.mul_(1e4)
        policy.net[-2].bias.zero_()
    many = observations(np.random.default_rng(2), 200)
    actions = policy.act(many, pm)
    low, high = policy.action_low.numpy(), policy.action_high.numpy()
    assert (actions >= low - 1e-5).all() and (actions <= high + 1e-5).all()
    assert np.isclose(actions, low, atol=1e-3).any() and np.isclose(actions, high, atol=1e-3).any()


def test_no_absolute_position_is_read_the_same_scene_anywhere_gives_the_same_action():
    policy = fitted_policy()
    obs = observations(np.random.default_rng(3), 6)
    here = policy.act(obs, policy.planning_map(*grids(risky=True)))
    shifted = obs.copy()
    shifted[:, [0, 1, 6, 7]] += np.array([20.0, -7.0, 20.0, -7.0], np.float32)
    there = policy.act(shifted, policy.planning_map(*grids(origin=(16.0, -10.0), risky=True)))
    np.testing.assert_allclose(there, here, atol=1e-4)
    # ... while the map itself does matter.
    assert not np.allclose(policy.act(obs, policy.planning_map(*grids(risky=False))), here, atol=1e-4)
    with pytest.raises(ValueError, match="safe_distance=False"):
        policy.act(obs, PlanningMap.from_grids(*grids(), safe_distance=False))


def test_it_learns_a_mapping_that_only_the_map_explains():
    maps = {"open": grids(risky=False), "risky": grids(risky=True)}
    episodes = synthetic_episodes()
    policy, history, info = mbc.train(episodes, maps, small_model(), steps=300, batch_size=64, lr=3e-3, hidden=64,
                                      layers=2, log=None, log_every=25)
    assert info["transitions"] == 240 and info["maps"] == 2 and info["episodes"] == 8
    first, last = history[0][1], history[-1][1]
    # Without the map omega's error alone keeps the loss near 0.5 (normalised units): only reading it gets below.
    assert last < first / 5 and last < 0.05, history
    for e in episodes[:2]:
        predicted = policy.act(e["observations"][:-1], policy.planning_map(*maps[e["layout"]]))
        assert np.abs(predicted - e["actions"]).mean() < 0.15, e["layout"]


def test_save_and_load_round_trip_exactly_through_the_one_loader(tmp_path):
    policy = fitted_policy(hidden=32, layers=3)
    path = mbc.save(policy, tmp_path / "map_bc.safetensors", extra={"dataset": "synthetic", "steps": 5})
    loaded = bc.load(path)
    assert isinstance(loaded, mbc.MapBehaviourCloningPolicy) and loaded.sizes == policy.sizes
    original, restored = policy.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    pm = policy.planning_map(*grids(risky=True))
    obs = observations(np.random.default_rng(4), 7)
    np.testing.assert_array_equal(loaded.act(obs, pm), policy.act(obs, pm))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == bc.MAP_FORMAT and json.loads(meta["features"]) == list(mbc.FEATURE_NAMES)
    sizes = json.loads(meta["sizes"])
    assert (sizes["map_patch_cells"], sizes["map_patch_m"], sizes["map_channels"], sizes["map_safe_distance"]) == \
        (16, 3.2, 7, True)
    assert json.loads(meta["steps"]) == 5 and meta["dataset"] == "synthetic"


def test_files_that_are_not_a_map_policy_are_refused_naming_the_problem(tmp_path):
    core = tmp_path / "core.safetensors"
    save_file({"w": torch.zeros(2)}, str(core), metadata={"format": "rs_diffuser_ros.core/2"})
    with pytest.raises(bc.BehaviourCloningError, match=r"'format' is 'rs_diffuser_ros.core/2'.*map-conditioned"):
        bc.load(core)
    no_sizes = tmp_path / "no_sizes.safetensors"
    save_file({"w": torch.zeros(2)}, str(no_sizes), metadata={"format": bc.MAP_FORMAT})
    with pytest.raises(bc.BehaviourCloningError, match="metadata field 'sizes' is missing"):
        bc.load(no_sizes)
    good = mbc.save(fitted_policy(hidden=32, layers=2), tmp_path / "good.safetensors")
    with safe_open(str(good), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    sizes = json.loads(meta["sizes"])
    for change, message in (({"hidden": 64}, "weights do not match"),
                            ({"map_channels": len(PATCH_CHANNELS) + 1}, "does not describe a map-conditioned"),
                            ({"bogus": 1}, "does not describe a map-conditioned")):
        bad = tmp_path / "bad.safetensors"
        save_file(tensors, str(bad), metadata={**meta, "sizes": json.dumps({**sizes, **change})})
        with pytest.raises(bc.BehaviourCloningError, match=message):
            bc.load(bad)
    with pytest.raises(bc.BehaviourCloningError, match="no maps"):
        mbc.training_set(synthetic_episodes(2), {}, small_model())
    with pytest.raises(bc.BehaviourCloningError, match="not among the dataset's maps"):
        mbc.training_set(synthetic_episodes(2), {"open": grids()}, small_model())


def test_the_evaluation_batches_one_forward_over_its_environments():
    policy = fitted_policy()
    occ, risk = grids(risky=True)
    context = types.SimpleNamespace(device="cpu", grid=occ, risk_grid=risk, severity_grid=None)
    batched = LearnedBatchPolicy.in_context(policy, context)
    assert batched.map_input is not None and batched.map_input.safe_distance
    calls = []
    policy.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    obs = observations(np.random.default_rng(5), 4)
    actions = batched.act(obs, [0, 1, 2, 3])
    assert calls == [4]
    one_by_one = np.concatenate([batched.act(o[None], [i]) for i, o in enumerate(obs)])
    np.testing.assert_allclose(actions, one_by_one, atol=1e-5)
    # A per-layout policy is driven as before: no map.
    per_layout, _ = bc.train(obs, actions, steps=2, hidden=8, log=None)
    assert LearnedBatchPolicy.in_context(per_layout, context).map_input is None


@pytest.fixture(scope="module")
def collected_policy(tmp_path_factory):
    """A map-conditioned policy trained by the command line on a tiny collected maps dataset (2 maps x 2 episodes)."""
    from risky_nav.collect import main as collect

    root = tmp_path_factory.mktemp("bcmap")
    dataset = root / "riskynav" / "tiny-v0"
    assert collect(["--generate", "2", "--generate-seed", "20", "--episodes-per-map", "2", "--mix",
                    "shortcut=1,detour=1", "--out", str(dataset)]) == 0
    out = root / "bc"
    assert bc.main(["--dataset", str(dataset), "--out", str(out), "--map-conditioned", "--steps", "30",
                    "--batch-size", "32", "--hidden", "32", "--log-every", "10", "--deadline-s", "60"]) == 0
    return out / "policy.safetensors"


def test_the_command_line_trains_it_on_a_collected_maps_dataset(collected_policy):
    policy = bc.load(collected_policy)
    assert isinstance(policy, mbc.MapBehaviourCloningPolicy)
    assert (policy.map_patch_cells, policy.map_patch_m, policy.map_channels) == (32, 6.4, 7)  # config/model.yaml's
    losses = json.loads((collected_policy.parent / "bc_losses.json").read_text())["step_loss"]
    assert [s for s, _ in losses] == [10, 20, 30]
    assert losses[-1][1] < losses[0][1]
    with safe_open(str(collected_policy), framework="pt") as f:
        meta = f.metadata()
    assert json.loads(meta["maps"]) == 2 and json.loads(meta["episodes"]) == 4 and json.loads(meta["steps"]) == 30
    with pytest.raises(SystemExit):
        bc.main(["--dataset", "x", "--out", "y", "--config", "config/model.yaml"])  # --config needs --map-conditioned


def test_the_evaluation_drives_it_on_a_generated_test_map(tmp_path, collected_policy):
    from risky_nav.mapgen import TEST_SEEDS, generate_map

    from rs_diffuser_ros.eval.__main__ import main as evaluate

    generated = generate_map(TEST_SEEDS[0])  # the test split: never in any training set
    raw = yaml.safe_load(generated.yaml_text())
    raw["time_limit"] = 1.5  # 15 steps an episode
    layout = tmp_path / f"{generated.layout.name}.yaml"
    layout.write_text(yaml.safe_dump(raw))
    out = tmp_path / "eval"
    assert evaluate(["--layout", str(layout), "--settings", f"bc:{collected_policy}", "--episodes", "2",
                     "--workers", "1", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    episodes = results["episodes"][f"bc:{collected_policy}"]
    assert [e["seed"] for e in episodes] == [0, 1] and all(1 <= e["length"] <= 15 for e in episodes)
    # A file of another kind is refused before any episode, naming it.
    wrong = tmp_path / "wrong.safetensors"
    save_file({"w": torch.zeros(2)}, str(wrong), metadata={"format": "rs_diffuser_ros.core/2"})
    with pytest.raises(SystemExit):
        evaluate(["--layout", str(layout), "--settings", f"bc:{wrong}", "--episodes", "1", "--out", str(tmp_path / "x")])


def test_the_shipped_general_bc_reads_the_general_model_map_input_and_drives_towards_the_goal():
    """The shipped file is a map-conditioned policy with the map settings of the general model it was trained beside
    (gpu19_joint, kept in experiments/checkpoints; the shipped g2, like f1, reads a larger patch with one more channel), and on
    the default layout, which it never saw, it closes on the goal."""
    from risky_nav.env import RiskyNavEnv

    from rs_diffuser_ros.core.planner import RiskSensitivePlanner
    from rs_diffuser_ros.shipped import model_path

    policy = bc.load(model_path("behaviour_cloning_general.safetensors"))
    assert isinstance(policy, mbc.MapBehaviourCloningPolicy)
    beside = Path(__file__).resolve().parents[1] / "experiments/checkpoints/general_gpu19_joint.safetensors"
    general = RiskSensitivePlanner.from_checkpoint(beside, device="cpu").config.model
    assert (policy.map_patch_cells, policy.map_patch_m, policy.map_channels, policy.map_safe_distance) == (
        general.map_patch_cells, general.map_patch_m, general.map_channels, general.map_safe_distance)
    env = RiskyNavEnv("default")
    obs, _ = env.reset(seed=2)  # 8.45 m from the goal
    # The grids as the evaluation hands them over: what the sim node publishes.
    pm = policy.planning_map(*published_grids(env.layout))
    start = np.linalg.norm(obs[:2] - obs[6:8])
    for _ in range(60):  # 6 s
        obs, *_ = env.step(policy.act(obs[None], pm)[0])
    env.close()
    assert np.linalg.norm(obs[:2] - obs[6:8]) < start - 2.5  # 1 m/s at most; measured 5.2 m closer
