"""diagnostics/benchmark.py: takes a shipped model by name and says what it timed."""
from rs_diffuser_ros.diagnostics import benchmark
from test_core_helpers import single_thread  # noqa: F401 (autouse fixture)


def test_a_shipped_model_is_timed_by_its_name_with_its_own_route_candidates(capsys):
    assert benchmark.main(["--checkpoint", "general", "--device", "cpu", "--candidates", "4", "--ddim-steps", "1",
                           "--paths", "fast", "--threads", "1", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "models/general.safetensors; map-conditioned" in out and "route candidates 8 per way" in out
    assert sum(line.startswith("| 4 | 1 | on | fast | fp32 |") for line in out.splitlines()) == 1  # the one row asked for
