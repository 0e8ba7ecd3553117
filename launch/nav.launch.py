"""Simulation + risk-sensitive planner + rviz2, parameters from config/*.yaml.

    ros2 launch rs_diffuser_ros nav.launch.py layout:=default alpha:=0.05 device:=cuda rviz:=false

On a machine without `ros2 launch` (pip-only set-up), `bringup` starts the same two nodes
from the same YAML files.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, Shutdown
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "rs_diffuser_ros"


def generate_launch_description():
    config = PathJoinSubstitution([FindPackageShare(PACKAGE), "config"])
    layout = LaunchConfiguration("layout")
    alpha = LaunchConfiguration("alpha")
    device = LaunchConfiguration("device")
    rviz = LaunchConfiguration("rviz")

    return LaunchDescription([
        DeclareLaunchArgument("layout", default_value="default",
                              description="Simulation layout: a name in risky_nav/layouts or a path to a YAML file"),
        DeclareLaunchArgument("alpha", default_value="0.1",
                              description="Risk level in (0, 1]: 1.0 risk-neutral, 0.05 very cautious"),
        DeclareLaunchArgument("device", default_value="auto", choices=["auto", "cuda", "cpu"],
                              description="Torch device of the planner"),
        DeclareLaunchArgument("rviz", default_value="true", choices=["true", "false"],
                              description="Start rviz2 with config/nav.rviz"),
        Node(
            package=PACKAGE, executable="sim_node", name="sim", output="screen",
            parameters=[PathJoinSubstitution([config, "sim.yaml"]),
                        {"layout": ParameterValue(layout, value_type=str)}],
            on_exit=Shutdown(reason="the simulation stopped"),
        ),
        Node(
            package=PACKAGE, executable="planner_node", name="planner", output="screen",
            parameters=[PathJoinSubstitution([config, "planner.yaml"]),
                        {"alpha": ParameterValue(alpha, value_type=float),
                         "device": ParameterValue(device, value_type=str)}],
            on_exit=Shutdown(reason="the planner stopped"),
        ),
        Node(
            package="rviz2", executable="rviz2", name="rviz2", output="log",
            arguments=["-d", PathJoinSubstitution([config, "nav.rviz"])],
            condition=IfCondition(rviz),
        ),
    ])
