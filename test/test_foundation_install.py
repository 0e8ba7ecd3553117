"""The colcon-installed package is what ROS tools find: ament index, share dir, executables, message."""
import os
from pathlib import Path

import pytest
from ament_index_python.packages import get_package_prefix, get_package_share_directory

PACKAGE = "rs_diffuser_ros"
REPO = Path(__file__).resolve().parents[1]


def test_share_dir_found_through_ament_index():
    share = Path(get_package_share_directory(PACKAGE))
    assert (share / "package.xml").is_file()
    assert (share / "launch").is_dir()
    assert (share / "config").is_dir()
    assert "<build_type>ament_cmake</build_type>" in (share / "package.xml").read_text()


def test_executables_land_in_lib_for_ros2_run():
    lib = Path(get_package_prefix(PACKAGE)) / "lib" / PACKAGE
    cfg = (REPO / "setup.cfg").read_text()
    names = [line.split("=")[0].strip() for line in cfg.split("console_scripts =")[1].split("[")[0].splitlines()
             if "=" in line]
    assert names, "setup.cfg declares no console_scripts"
    for name in names:
        exe = lib / name
        assert exe.is_file(), f"{exe} missing: ros2 run {PACKAGE} {name} would fail"
        assert os.access(exe, os.X_OK), f"{exe} is not executable"


def test_generated_message_has_the_documented_fields():
    from rs_diffuser_ros.msg import RiskPlan

    fields = RiskPlan.get_fields_and_field_types()
    assert fields == {
        "header": "std_msgs/Header",
        "alpha": "float",
        "risk_mode": "string",
        "risk_value": "float",
        "expected_return": "float",
        "return_quantiles": "sequence<float>",
        "num_candidates": "uint32",
        "planning_latency_ms": "float",
    }


def test_wheel_cmake_exports_point_at_real_include_dirs():
    """The set-up step rewrote the wheels' baked-in /opt/python include paths (see run.sh)."""
    venv = os.environ.get("VIRTUAL_ENV")
    if not venv:
        pytest.fail("tests must run inside the set-up environment (./run.sh test)")
    stale = [p for p in Path(venv, "share").rglob("*.cmake") if "/opt/python/cp3" in p.read_text(errors="ignore")]
    assert stale == [], f"CMake exports still name the wheel builder's paths: {stale[:3]}"
