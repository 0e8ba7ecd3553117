"""The path a ROS 2 user takes: clone into <ws>/src, plain `colcon build` (no symlinks), source, use."""
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = {".git", "build", "install", "log", "datasets", "runs", "out", "__pycache__", ".pytest_cache", ".hypothesis"}


def test_colcon_build_in_a_workspace(tmp_path):
    src = tmp_path / "ws" / "src" / "rs_diffuser_ros"
    shutil.copytree(REPO, src, ignore=lambda d, names: [n for n in names if n in SKIP])
    ws = tmp_path / "ws"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLCON")}
    build = subprocess.run(["colcon", "build", "--event-handlers", "console_direct-"], cwd=ws, env=env,
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "Finished <<< rs_diffuser_ros" in build.stdout, build.stdout
    assert "1 package finished" in build.stdout

    # A fresh shell that sources the workspace, as a user would, sees this install (not the repo's).
    check = textwrap.dedent(
        """
        import rs_diffuser_ros.msg, risky_nav
        from ament_index_python.packages import get_package_share_directory
        from rs_diffuser_ros.msg import RiskPlan
        print(get_package_share_directory("rs_diffuser_ros"))
        print(RiskPlan(alpha=0.5).alpha)
        """
    )
    run = subprocess.run(["bash", "-c", f"source install/setup.bash && cd /tmp && python -c '{check}'"],
                         cwd=ws, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    share, alpha = run.stdout.split()
    assert Path(share) == ws / "install" / "rs_diffuser_ros" / "share" / "rs_diffuser_ros"
    assert float(alpha) == 0.5
    lib = ws / "install" / "rs_diffuser_ros" / "lib" / "rs_diffuser_ros"
    assert (lib / "planner_node").is_file() and os.access(lib / "planner_node", os.X_OK)
