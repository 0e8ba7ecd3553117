"""Plain setuptools description of the Python side (core, sim, nodes).

The ROS build goes through CMakeLists.txt (it must, to generate msg/). This file serves
`pip install .` for the ROS-free parts (training on a GPU box, research scripts):
metadata and executables come from setup.cfg, shared with the CMake build.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "rs_diffuser_ros"

setup(
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"])
    + ["risky_nav"] + [f"risky_nav.{p}" for p in find_packages("sim/risky_nav")]
    + ["risky_pointmass"],
    package_dir={"risky_nav": "sim/risky_nav", "risky_pointmass": "sim/risky_pointmass"},
    package_data={PACKAGE: ["models/*.safetensors", "models/*.json"], "risky_nav": ["layouts/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*")),
    ],
    python_requires=">=3.10",
    install_requires=["numpy", "torch", "pyyaml", "safetensors", "gymnasium", "pybullet", "tqdm"],
)
