"""The README's main command: closed-loop navigation demo on the shipped model and map.

Placeholder until the evaluation issue lands: the trained default model and the closed-loop
evaluation it needs do not exist yet.
"""
import sys


def main() -> int:
    print("rs_diffuser_ros demo: not available yet. Missing: the shipped default model "
          "(rs_diffuser_ros/models/default.safetensors) and the closed-loop evaluation "
          "(rs_diffuser_ros/eval). The set-up step and the ROS 2 build completed.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
