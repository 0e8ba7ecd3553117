"""rs_diffuser_ros: risk-sensitive diffusion planning for ROS 2 navigation.

Sub-packages:
  core   the algorithm (torch, numpy; no ROS import)
  nodes  thin ROS 2 adapters around core and the simulation
  msg    generated from msg/ by the ROS build
"""
__version__ = "0.1.0"

# The ROS build installs the generated messages (rs_diffuser_ros.msg) into the installed
# copy of this package. When the source tree comes first on sys.path (running from the
# repository root), let it find `msg` there too.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
