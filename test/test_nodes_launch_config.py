"""launch/nav.launch.py, config/*.yaml and config/nav.rviz agree with the nodes they configure.

There is no `launch`/`launch_ros`/rviz2 on a pip-only machine, so the launch file is read
with `ast`: it must use the real launch API names, declare every argument it reads, start
executables that setup.cfg installs with YAML files that exist, and override only
parameters the nodes declare. The YAML files must set only declared parameters, with the
declared types and within the declared ranges; the rviz config must show the topics the
nodes publish.
"""
import ast
import configparser
from pathlib import Path

import pytest
import yaml
from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.parameter import Parameter

from rs_diffuser_ros.nodes import planner_params, sim_node, topics

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "nav.launch.py"

# The launch API names this file may use, with the module each lives in (ROS 2 Humble .. Kilted).
LAUNCH_API = {
    "launch": {"LaunchDescription"},
    "launch.actions": {"DeclareLaunchArgument", "Shutdown", "GroupAction", "IncludeLaunchDescription"},
    "launch.conditions": {"IfCondition", "UnlessCondition"},
    "launch.substitutions": {"LaunchConfiguration", "PathJoinSubstitution", "TextSubstitution"},
    "launch_ros.actions": {"Node"},
    "launch_ros.parameter_descriptions": {"ParameterValue"},
    "launch_ros.substitutions": {"FindPackageShare"},
}


def launch_tree():
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def keyword(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


def literal_strings(node):
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def console_scripts():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return {line.split("=")[0].strip() for line in cfg["options.entry_points"]["console_scripts"].splitlines()
            if "=" in line}


def declared(node_name):
    """name -> descriptor, its type filled in from the default where the node lets rclpy infer it."""
    if node_name == "planner":
        entries = [(name, default, planner_params.descriptor(default, spec))
                   for name, (default, spec) in planner_params.PARAMETERS.items()]
    else:
        entries = sim_node.PARAMETERS
    result = {}
    for name, default, descriptor in entries:
        if descriptor.type == ParameterType.PARAMETER_NOT_SET:
            kind = default if isinstance(default, Parameter.Type) else Parameter.Type.from_parameter_value(default)
            descriptor = ParameterDescriptor(type=kind.value, floating_point_range=descriptor.floating_point_range,
                                             integer_range=descriptor.integer_range)
        result[name] = descriptor
    return result


def test_launch_file_uses_only_the_real_launch_api_and_defines_the_entry_point():
    tree = launch_tree()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module in LAUNCH_API, f"unexpected import from {node.module}"
            for alias in node.names:
                assert alias.name in LAUNCH_API[node.module], f"{node.module} has no {alias.name}"
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "generate_launch_description" in functions


def test_launch_arguments_are_declared_and_used():
    tree = launch_tree()
    declared_args = {literal_strings(c.args[0])[0] for c in calls(tree, "DeclareLaunchArgument")}
    used_args = {literal_strings(c.args[0])[0] for c in calls(tree, "LaunchConfiguration")}
    assert declared_args == {"layout", "alpha", "rviz", "device"}
    assert used_args == declared_args


def test_launch_nodes_are_installed_executables_with_existing_yaml_and_declared_overrides():
    tree = launch_tree()
    nodes = {literal_strings(keyword(c, "name"))[0]: c for c in calls(tree, "Node")}
    assert set(nodes) == {"sim", "planner", "rviz2"}
    scripts = console_scripts()
    for name, yaml_name in (("sim", "sim.yaml"), ("planner", "planner.yaml")):
        call = nodes[name]
        assert literal_strings(keyword(call, "executable"))[0] in scripts
        parameters = keyword(call, "parameters")
        assert yaml_name in literal_strings(parameters.elts[0]), f"{name} must load config/{yaml_name}"
        assert (REPO / "config" / yaml_name).is_file()
        overrides = [k.value for d in parameters.elts[1:] for k in d.keys]
        assert overrides and set(overrides) <= set(declared(name)), f"{name} overrides {overrides}"
    rviz = nodes["rviz2"]
    assert "nav.rviz" in literal_strings(keyword(rviz, "arguments"))
    assert keyword(rviz, "condition").func.id == "IfCondition"


@pytest.mark.parametrize("node_name", ["planner", "sim"])
def test_yaml_sets_only_declared_parameters_with_their_types_and_ranges(node_name):
    path = REPO / "config" / f"{node_name}.yaml"
    data = yaml.safe_load(path.read_text())
    assert list(data) == [node_name], f"{path}: the top-level key must be the node name '{node_name}'"
    values = data[node_name]["ros__parameters"]
    descriptors = declared(node_name)
    unknown = set(values) - set(descriptors)
    assert not unknown, f"{path}: parameters the node does not declare: {sorted(unknown)}"
    python_type = {ParameterType.PARAMETER_DOUBLE: float, ParameterType.PARAMETER_INTEGER: int,
                   ParameterType.PARAMETER_STRING: str, ParameterType.PARAMETER_BOOL: bool}
    for name, value in values.items():
        descriptor = descriptors[name]
        assert descriptor.type in python_type, f"{path}: {name} is not a scalar parameter"
        assert type(value) is python_type[descriptor.type], f"{path}: {name}: {value!r} has the wrong type"
        for r in list(descriptor.floating_point_range) + list(descriptor.integer_range):
            assert r.from_value <= value <= r.to_value, f"{path}: {name}={value} outside its range"
        if node_name == "planner":
            assert planner_params.check_parameter(name, value) is None, f"{path}: {name}={value!r} is refused"


def test_planner_yaml_sets_every_planner_parameter():
    values = yaml.safe_load((REPO / "config" / "planner.yaml").read_text())["planner"]["ros__parameters"]
    assert set(values) == set(planner_params.PARAMETERS)


def rviz_displays():
    config = yaml.safe_load((REPO / "config" / "nav.rviz").read_text())
    manager = config["Visualization Manager"]
    return manager, {d["Class"]: d for d in manager["Displays"]}, manager["Displays"]


def test_rviz_config_shows_what_the_nodes_publish_in_their_frame():
    manager, _, displays = rviz_displays()
    assert manager["Global Options"]["Fixed Frame"] == planner_params.PARAMETERS["global_frame"][0]
    shown = {d["Topic"]["Value"].lstrip("/"): d for d in displays if "Topic" in d}
    expected = {topics.COSTMAP: "rviz_default_plugins/Map", topics.RISK_MAP: "rviz_default_plugins/Map",
                topics.PLAN: "rviz_default_plugins/Path",
                topics.CANDIDATES: "rviz_default_plugins/MarkerArray",
                topics.RISKY_REGIONS: "rviz_default_plugins/MarkerArray",
                topics.ODOM: "rviz_default_plugins/Odometry", topics.GOAL: "rviz_default_plugins/Pose"}
    for topic, cls in expected.items():
        assert topic in shown and shown[topic]["Class"] == cls, f"rviz shows no {cls} of /{topic}"
    # Latched publishers need latched subscriptions to be seen by an rviz2 started later.
    for topic in (topics.COSTMAP, topics.RISK_MAP, topics.RISKY_REGIONS):
        assert shown[topic]["Topic"]["Durability Policy"] == "Transient Local"
    # Hazard levels read as a cost scale over the map, not as obstacles.
    assert shown[topics.RISK_MAP]["Color Scheme"] == "costmap" and shown[topics.RISK_MAP]["Alpha"] < 1


def test_rviz_goal_tool_publishes_where_the_planner_listens():
    manager, _, _ = rviz_displays()
    goal_tools = [t for t in manager["Tools"] if t["Class"] == "rviz_default_plugins/SetGoal"]
    assert len(goal_tools) == 1
    assert goal_tools[0]["Topic"]["Value"].lstrip("/") == topics.GOAL


def test_docs_list_every_parameter_of_both_nodes():
    docs = (REPO / "docs" / "ros.md").read_text()
    for node_name in ("planner", "sim"):
        missing = [name for name in declared(node_name) if f"`{name}`" not in docs]
        assert not missing, f"docs/ros.md does not describe {node_name} parameters {missing}"
