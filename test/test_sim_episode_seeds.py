"""Env seeds over many maps: no two maps of a run reset with the same seed, so none share risk-event draws."""
import pytest
from risky_nav.episode_seeds import first_episode_seed


def test_maps_of_one_run_never_share_a_seed_and_the_first_map_keeps_the_run_seed():
    episodes = 20
    seeds = [first_episode_seed(12000, m, episodes) + j for m in range(50) for j in range(episodes)]
    assert len(set(seeds)) == 50 * episodes
    assert first_episode_seed(12000, 0, episodes) == 12000
    assert first_episode_seed(12000, 3, episodes) == 12060


@pytest.mark.parametrize("map_index, episodes", [(-1, 20), (0, 0)])
def test_a_negative_map_index_or_no_episodes_is_refused(map_index, episodes):
    with pytest.raises(ValueError, match="map_index"):
        first_episode_seed(0, map_index, episodes)


def test_the_command_line_prints_the_seed_gate_sh_resets_a_map_from(capsys):
    from risky_nav.episode_seeds import main
    assert main(["18000", "45", "20"]) == 0
    assert capsys.readouterr().out.strip() == "18900"
    with pytest.raises(SystemExit):
        main(["18000", "-1", "20"])
    assert "map_index -1" in capsys.readouterr().err
