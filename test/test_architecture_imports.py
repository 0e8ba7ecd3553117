"""The import rules between the packages, checked on the source with `ast` (nothing is imported).

The same table is in docs/architecture.md ("Import rules"); change both together. Each row:
the files, the modules they must not import (a name forbids the module and everything under
it), and why. Imports inside functions, relative imports and importlib.import_module("...")
with a literal name count as imports.
"""
import ast
import configparser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Everything that needs a ROS install: the client library, message packages (ours included),
# the ament index, launch.
ROS = ("rclpy", "rcl_interfaces", "builtin_interfaces", "std_msgs", "geometry_msgs", "nav_msgs",
       "visualization_msgs", "tf2_ros", "ament_index_python", "launch", "launch_ros", "rosidl_runtime_py",
       "rs_diffuser_ros.msg")
NODES, EVAL, STANDIN, CONTROL, BASELINES = (f"rs_diffuser_ros.{p}" for p in
                                            ("nodes", "eval", "standin", "control", "baselines"))

RULES = {
    # files (glob from the repository root): (forbidden modules, why)
    "rs_diffuser_ros/core/**/*.py": (ROS + (NODES, EVAL, STANDIN, CONTROL, BASELINES),
                                     "the algorithm: torch and numpy only, below everything that uses it"),
    "rs_diffuser_ros/control/**/*.py": (ROS + (NODES, EVAL, STANDIN),
                                        "the controller: ROS-free, shared by the planner node and the evaluation"),
    "sim/**/*.py": (ROS + ("rs_diffuser_ros",), "risky_nav is its own ROS-free package"),
    "rs_diffuser_ros/nodes/**/*.py": ((EVAL, STANDIN), "a node ships; the evaluation and the tools sit on top of it"),
    "rs_diffuser_ros/eval/**/*.py": (ROS + (NODES, STANDIN), "the evaluation runs without ROS"),
    "rs_diffuser_ros/baselines/**/*.py": (ROS + (NODES, EVAL, STANDIN), "baselines are models the evaluation uses"),
    "rs_diffuser_ros/diagnostics/**/*.py": (ROS + (NODES, STANDIN, CONTROL),
                                           "benchmarks and plots of the algorithm run without ROS"),
}
# Sub-packages with no row, and why; a new sub-package fails test_every_subpackage_has_a_rule
# until it gets a row here (and in docs/architecture.md) or a reason to have none.
FREE = {
    "standin": "command-line stand-ins for ros2 launch/param and rviz2: they sit on top of the nodes",
    "models": "shipped model files, no code",
}


def module_name(path: Path) -> str:
    """The dotted name a file is imported under: sim/risky_nav/x.py is risky_nav.x."""
    rel = path.relative_to(REPO)
    parts = rel.parts[1:] if rel.parts[0] == "sim" else rel.parts
    parts = parts[:-1] if parts[-1] == "__init__.py" else (*parts[:-1], parts[-1][:-3])
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False):
    """(line, dotted name) for every import in `source`, relative ones resolved against `module`.

    `from a import b` gives both "a" and "a.b", since b may be a sub-module.
    """
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                if not package or node.level - 1 >= len(anchor):
                    raise ValueError(f"{module} line {node.lineno}: relative import beyond the top-level package")
                anchor = ".".join(anchor[:len(anchor) - (node.level - 1)])
                base = f"{anchor}.{base}" if base else anchor
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif (isinstance(node, ast.Call) and _called_name(node.func) in ("importlib.import_module", "import_module",
                                                                         "__import__")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and not node.args[0].value.startswith(".")):
            found.append((node.lineno, node.args[0].value))
    return found


def _called_name(func) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return ""


def violations(source: str, module: str, forbidden, is_package: bool = False):
    """'module line N imports X' for each import of a forbidden module (or anything under one)."""
    bad = []
    for line, name in imported_modules(source, module, is_package):
        hit = next((f for f in forbidden if name == f or name.startswith(f + ".")), None)
        if hit is not None:
            bad.append(f"{module} line {line} imports {name} (forbidden: {hit})")
    return sorted(set(bad))


def files(pattern: str):
    return sorted(p for p in REPO.glob(pattern) if "__pycache__" not in p.parts)


@pytest.mark.parametrize("pattern", list(RULES))
def test_import_rule_holds(pattern):
    forbidden, why = RULES[pattern]
    paths = files(pattern)
    if not paths and pattern.startswith("rs_diffuser_ros/control/"):
        pytest.skip("rs_diffuser_ros/control/ does not exist yet")
    assert paths, f"no file matches {pattern}: the table names a folder that is gone"
    bad = []
    for path in paths:
        bad += violations(path.read_text(), module_name(path), forbidden, is_package=path.name == "__init__.py")
    assert not bad, f"{pattern} ({why}):\n" + "\n".join(bad)


def test_every_subpackage_has_a_rule():
    ruled = {pattern.split("/")[1] for pattern in RULES if pattern.startswith("rs_diffuser_ros/")}
    subpackages = {p.name for p in (REPO / "rs_diffuser_ros").iterdir()
                   if p.is_dir() and p.name != "__pycache__" and not p.name.startswith(".")}
    unknown = subpackages - ruled - set(FREE)
    assert not unknown, f"rs_diffuser_ros/{sorted(unknown)} has no import rule: add one to RULES (and to " \
                        f"docs/architecture.md) or say in FREE why it needs none"


def test_executables_are_nodes_in_nodes_and_tools_in_standin():
    """setup.cfg's console_scripts: `*_node` is a node (rs_diffuser_ros/nodes), anything else a stand-in
    tool (rs_diffuser_ros/standin); each names a top-level function of a module that exists."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    entries = dict(line.replace(" ", "").split("=") for line in
                   cfg["options.entry_points"]["console_scripts"].strip().splitlines())
    assert {"planner_node", "sim_node", "bringup", "param", "snapshot"} <= set(entries)
    for name, target in entries.items():
        module, function = target.split(":")
        home = "rs_diffuser_ros.nodes." if name.endswith("_node") else "rs_diffuser_ros.standin."
        assert module.startswith(home), f"executable {name} -> {module}: belongs under {home}"
        path = REPO / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"executable {name}: {path} missing"
        defined = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
        assert function in defined, f"executable {name}: {module} defines no top-level {function}()"


# The checker itself: each case below breaks a rule, so a checker that finds nothing fails here.

@pytest.mark.parametrize("source, module, is_package, expected", [
    ("import rclpy\n", "rs_diffuser_ros.core.planner", False, "rclpy"),
    ("from rclpy.node import Node\n", "rs_diffuser_ros.eval.runner", False, "rclpy.node"),
    ("from geometry_msgs.msg import Twist\n", "rs_diffuser_ros.control.controller", False, "geometry_msgs.msg"),
    ("from rs_diffuser_ros import eval\n", "rs_diffuser_ros.nodes.planner_node", False, "rs_diffuser_ros.eval"),
    ("from ..nodes import topics\n", "rs_diffuser_ros.core.planner", False, "rs_diffuser_ros.nodes"),
    ("from ...eval.metrics import METRICS\n", "rs_diffuser_ros.core.models.unet", False, "rs_diffuser_ros.eval.metrics"),
    ("from .. import standin\n", "rs_diffuser_ros.eval", True, "rs_diffuser_ros.standin"),
    ("def late():\n    from rs_diffuser_ros.control import step\n", "rs_diffuser_ros.core.x", False,
     "rs_diffuser_ros.control"),
    ("import importlib\nimportlib.import_module('rclpy')\n", "rs_diffuser_ros.core.device", False, "rclpy"),
    ("from rs_diffuser_ros.core import planner\n", "risky_nav.env", False, "rs_diffuser_ros.core"),
])
def test_checker_finds_a_forbidden_import(source, module, is_package, expected):
    forbidden = {"rs_diffuser_ros.core": ROS + (NODES, EVAL, STANDIN, CONTROL),
                 "rs_diffuser_ros.control": ROS, "rs_diffuser_ros.eval": ROS + (NODES, STANDIN),
                 "rs_diffuser_ros.nodes": (EVAL,), "risky_nav": ("rs_diffuser_ros",)}
    rule = next(v for k, v in forbidden.items() if module == k or module.startswith(k + "."))
    found = violations(source, module, rule, is_package)
    assert len(found) >= 1 and any(f"imports {expected}" in v for v in found), found


@pytest.mark.parametrize("source, module, is_package", [
    ("from .config import CoreConfig\n", "rs_diffuser_ros.core.planner", False),
    ("from . import risk\n", "rs_diffuser_ros.core", True),
    ("from rs_diffuser_ros.core.evaluate import x\n", "rs_diffuser_ros.core.planner", False),  # not ...eval
    ("import rclpy_free\n", "rs_diffuser_ros.core.planner", False),                         # not rclpy
    ("# import rclpy\ntext = 'from rs_diffuser_ros.nodes import topics'\n", "rs_diffuser_ros.core.x", False),
])
def test_checker_lets_allowed_imports_through(source, module, is_package):
    assert violations(source, module, ROS + (NODES, EVAL, STANDIN, CONTROL), is_package) == []


def test_relative_import_beyond_the_top_is_named():
    with pytest.raises(ValueError, match="rs_diffuser_ros.core line 1: relative import beyond"):
        imported_modules("from ... import x\n", "rs_diffuser_ros.core", is_package=True)


def test_module_names_follow_the_install_layout():
    assert module_name(REPO / "sim/risky_nav/env.py") == "risky_nav.env"
    assert module_name(REPO / "rs_diffuser_ros/core/__init__.py") == "rs_diffuser_ros.core"
    assert module_name(REPO / "rs_diffuser_ros/nodes/planner_node.py") == "rs_diffuser_ros.nodes.planner_node"
