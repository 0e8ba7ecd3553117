"""Handover data (eval/handover.py): the controller drives until each episode's handover step, then the detour expert
from where the robot is; the episodes are written as a dataset on another dataset's maps, and both train as one."""
import json

import numpy as np
import pytest
import yaml
from risky_nav import load_layout
from risky_nav.collect_maps import collect_maps
from risky_nav.dataset import load_episodes
from risky_nav.mapgen import generate_map

from rs_diffuser_ros.core.training.train import load_dataset_maps, load_datasets, train
from rs_diffuser_ros.eval.handover import POLICY_NAME, EpisodeRecorder, HandoverPolicy, main
from test_core_helpers import single_thread  # noqa: F401 (autouse fixture)
from test_core_map_input import map_config

MAP_SEED = 123  # a train-split map


class ScriptedController:
    """Stands in for the ControllerPolicy (reset / act on slots): constant commands, and a log of which slots it drove."""

    def __init__(self):
        self.driven = []

    def reset(self, slot, obs):
        pass

    def act(self, obs, slots):
        self.driven.append(list(slots))
        return np.tile(np.array([[0.25, 0.5]], np.float32), (len(slots), 1))


def test_the_controller_drives_until_the_handover_step_then_the_detour_from_where_the_robot_is():
    layout = generate_map(MAP_SEED).layout
    controller = ScriptedController()
    policy = HandoverPolicy(controller, layout, 2, np.random.default_rng(0), handover_s=(0.3, 0.3))  # 3 steps
    start = np.array([layout.start_region.x_min + 0.3, layout.start_region.y_min + 0.3, 0, 1, 0, 0,
                      layout.goal_region.x_min + 0.3, layout.goal_region.y_min + 0.3], np.float32)
    for slot in (0, 1):
        policy.reset(slot, start)
    actions = [policy.act(np.stack([start, start]), [0, 1]) for _ in range(3)]
    assert controller.driven == [[0, 1]] * 3 and all(np.allclose(a, [[0.25, 0.5]] * 2) for a in actions)
    moved = start.copy()
    moved[:2] += 0.2  # the expert plans from the state at the handover, not from the episode's start
    expert = policy.act(np.stack([moved, moved]), [0, 1])
    assert controller.driven == [[0, 1]] * 3  # no longer asked
    assert np.allclose(policy.experts[0].route[0], moved[:2], atol=0.15)
    assert not np.allclose(expert, [[0.25, 0.5]] * 2)
    policy.reset(1, start)  # a new episode in slot 1: the controller again, slot 0 stays with its expert
    policy.act(np.stack([moved, start]), [0, 1])
    assert controller.driven[-1] == [1]
    with pytest.raises(ValueError, match="handover_s"):
        HandoverPolicy(controller, layout, 1, np.random.default_rng(0), handover_s=(2.0, 1.0))


def run_recorded(recorder, slot, steps):
    """Drive `recorder` for one episode of `steps` steps in `slot`: observation i is [i, ...], reward i is -i, and
    the last step terminates."""
    recorder.reset(slot, np.full(8, 0.0, np.float32))
    for i in range(steps):
        recorder.act(np.full((1, 8), float(i), np.float32), [slot])
        recorder.on_step(slot, np.full(8, float(i + 1), np.float32), -float(i), i == steps - 1, False,
                         {"risk_event": i == 1, "collision": False, "in_risky_region": i < 3})


def test_an_episode_is_recorded_from_its_handover_on_and_dropped_if_it_ended_before():
    policy = HandoverPolicy(ScriptedController(), generate_map(MAP_SEED).layout, 2, np.random.default_rng(0),
                            handover_s=(0.2, 0.2))  # hands over at step 2
    recorder = EpisodeRecorder(policy, first_step=policy.handover_at)
    run_recorded(recorder, 0, 6)
    (slot, record), = recorder.finished
    assert slot == 0 and record.observations[0, 0] == 2.0  # the state the expert took over from
    assert record.observations[:, 0].tolist() == [2, 3, 4, 5, 6] and record.actions.shape == (4, 2)
    assert record.rewards.tolist() == [-2, -3, -4, -5]  # the returns-to-go of the states kept are the episode's
    assert record.in_risky_region.tolist() == [True, False, False, False] and not record.risk_events.any()
    assert record.terminations.tolist() == [False, False, False, True]
    run_recorded(recorder, 1, 2)  # over before its handover: nothing of the expert's to learn from
    assert len(recorder.finished) == 1 and not recorder.buffers  # finished, and not recorded
    whole = EpisodeRecorder(policy)  # --keep-controller-part: from the start
    run_recorded(whole, 0, 6)
    assert whole.finished[0][1].observations[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 6]


@pytest.fixture(scope="module")
def scripted_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("sets") / "scripted-v0"
    generated = generate_map(MAP_SEED)
    collect_maps([(generated.layout, generated.yaml_text())], 2, out, {"shortcut": 0.5, "detour": 0.5}, 0.0, seed=3,
                 progress=False)
    return out


def test_handover_episodes_are_recorded_on_the_other_sets_maps_and_train_with_them(scripted_set, tmp_path):
    scripted = load_episodes(scripted_set)
    model = tmp_path / "model"
    cfg = map_config(steps=2)
    train(cfg, scripted, model, seed=0, device="cpu", progress=False, maps=load_dataset_maps(str(scripted_set)))
    out = tmp_path / "handover-v0"
    assert main(["--checkpoint", str(model / "model.safetensors"), "--layouts", str(scripted_set / "layouts"),
                 "--episodes-per-map", "2", "--handover-s", "0.3", "0.6", "--seed", "5", "--out", str(out)]) == 0
    episodes = load_episodes(out)
    name = generate_map(MAP_SEED).layout.name
    assert [e["policy"] for e in episodes] == [POLICY_NAME] * 2 and {e["layout"] for e in episodes} == {name}
    for e in episodes:
        assert len(e["observations"]) == len(e["actions"]) + 1 == len(e["rewards"]) + 1
        assert e["terminations"][-1]  # the detour expert took it home
    stats = json.loads((out / "dataset_stats.json").read_text())
    assert stats["episodes"] == 2 and stats["success_share"] == 1.0 and stats["setting"] == "averse:0.1"
    # Both sets as one: every episode, each map once.
    both, layouts, _ = load_datasets([str(scripted_set), str(out)], True, False)
    assert len(both) == len(scripted) + 2 and list(layouts) == [name]


def test_a_map_name_that_means_two_maps_is_refused(scripted_set, tmp_path):
    other = tmp_path / "other-v0"
    generated = generate_map(MAP_SEED + 1)
    text = yaml.safe_load(generated.yaml_text())
    text["name"] = generate_map(MAP_SEED).layout.name  # the same name, another map
    collect_maps([(load_layout_from(text, tmp_path), yaml.safe_dump(text))], 1, other, {"shortcut": 1.0}, 0.0, seed=1,
                 progress=False)
    with pytest.raises(SystemExit, match="differs from the map of that name"):
        load_datasets([str(scripted_set), str(other)], True, False)


def load_layout_from(data: dict, folder):
    path = folder / "renamed.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_layout(str(path))
