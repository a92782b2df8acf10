"""The application: config, store, flows, the daemon and its CLI. The only package that wires."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ykt-terminal")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
