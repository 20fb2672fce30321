"""Running rtdb: one server process, or a supervisor of ``--workers`` processes, from settings."""

from rtdb.runner.server import StartError, build_app
from rtdb.runner.start import configure_logging, run

__all__ = ["StartError", "build_app", "configure_logging", "run"]
