"""The Duet operator: kopf handlers, Kubernetes I/O and the `duet` command line."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("duet")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
