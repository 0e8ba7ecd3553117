"""`param get|set NODE NAME [VALUE]`: what `ros2 param` does, for machines without the ros2 CLI.

Talks to the node's standard parameter services (rcl_interfaces/srv/GetParameters and
SetParameters, which every rclpy/rclcpp node offers as <node>/get_parameters, ...).
Values are parsed as `ros2 param set` parses them (YAML: 0.05 -> double, 3 -> integer,
true -> bool, averse -> string), except that an integer given for a double parameter is
sent as a double, as a person typing `alpha 1` means.

Exit status: 0 done, 1 the node refused (its reason is printed), 2 usage error or no such
node/parameter, 3 the service did not answer in time.
"""
import argparse
import os
import sys
import time

import rclpy
import yaml
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters

EXIT_REFUSED, EXIT_USAGE, EXIT_TIMEOUT = 1, 2, 3
RETRY_AFTER_S = 2.0


def parse_value(text: str) -> ParameterValue:
    """A ParameterValue from command-line text, typed the way `ros2 param set` types it."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if isinstance(value, bool):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    if isinstance(value, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    if isinstance(value, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    if isinstance(value, list) and value and all(isinstance(v, bool) for v in value):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL_ARRAY, bool_array_value=value)
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER_ARRAY, integer_array_value=value)
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=[float(v) for v in value])
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=value)
    return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=text)


def value_to_python(value: ParameterValue):
    """The Python value held by a ParameterValue (None when NOT_SET)."""
    fields = {
        ParameterType.PARAMETER_BOOL: "bool_value", ParameterType.PARAMETER_INTEGER: "integer_value",
        ParameterType.PARAMETER_DOUBLE: "double_value", ParameterType.PARAMETER_STRING: "string_value",
        ParameterType.PARAMETER_BYTE_ARRAY: "byte_array_value",
        ParameterType.PARAMETER_BOOL_ARRAY: "bool_array_value",
        ParameterType.PARAMETER_INTEGER_ARRAY: "integer_array_value",
        ParameterType.PARAMETER_DOUBLE_ARRAY: "double_array_value",
        ParameterType.PARAMETER_STRING_ARRAY: "string_array_value",
    }
    field = fields.get(value.type)
    if field is None:
        return None
    result = getattr(value, field)
    return list(result) if field.endswith("array_value") else result


class ParameterClient:
    """Calls one remote node's parameter services from a short-lived helper node."""

    def __init__(self, node, target: str, timeout_s: float):
        self._node, self._timeout_s = node, timeout_s
        self.target = target if target.startswith("/") else "/" + target
        self._get = node.create_client(GetParameters, f"{self.target}/get_parameters")
        self._set = node.create_client(SetParameters, f"{self.target}/set_parameters")

    def _call(self, client, request):
        deadline = time.monotonic() + self._timeout_s
        if not client.wait_for_service(timeout_sec=self._timeout_s):
            raise TimeoutError(f"service {client.srv_name} not available after {self._timeout_s:g} s "
                               f"(is node {self.target} running, in this ROS_DOMAIN_ID?)")
        # Right after discovery the service's reply can be lost (its reply writer may not yet
        # match our reader), so an unanswered request is sent again; get and set are idempotent.
        while time.monotonic() < deadline:
            future = client.call_async(request)
            rclpy.spin_until_future_complete(self._node, future,
                                             timeout_sec=min(RETRY_AFTER_S, max(0.0, deadline - time.monotonic())))
            if future.done():
                return future.result()
            client.remove_pending_request(future)
        raise TimeoutError(f"service {client.srv_name} did not answer within {self._timeout_s:g} s")

    def get(self, name: str) -> ParameterValue:
        response = self._call(self._get, GetParameters.Request(names=[name]))
        return response.values[0]

    def set(self, name: str, value: ParameterValue):
        """(successful, reason) of setting one parameter."""
        result = self._call(self._set, SetParameters.Request(parameters=[Parameter(name=name, value=value)]))
        return result.results[0].successful, result.results[0].reason


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="param", description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the node's services")
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("get", help="print a parameter's value")
    get.add_argument("node")
    get.add_argument("name")
    put = commands.add_parser("set", help="set a parameter; prints the node's reason when it refuses")
    put.add_argument("node")
    put.add_argument("name")
    put.add_argument("value")
    args = parser.parse_args(argv)

    rclpy.init()
    node = rclpy.create_node(f"param_client_{os.getpid()}", start_parameter_services=False, enable_rosout=False)
    try:
        client = ParameterClient(node, args.node, args.timeout)
        current = client.get(args.name)
        if current.type == ParameterType.PARAMETER_NOT_SET:
            print(f"Parameter '{args.name}' is not declared on node {client.target}", file=sys.stderr)
            return EXIT_USAGE
        if args.command == "get":
            print(value_to_python(current))
            return 0
        value = parse_value(args.value)
        if current.type == ParameterType.PARAMETER_DOUBLE and value.type == ParameterType.PARAMETER_INTEGER:
            value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(value.integer_value))
        successful, reason = client.set(args.name, value)
        if not successful:
            print(f"Setting parameter failed: {reason}", file=sys.stderr)
            return EXIT_REFUSED
        print("Set parameter successful")
        return 0
    except TimeoutError as error:
        print(error, file=sys.stderr)
        return EXIT_TIMEOUT
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
