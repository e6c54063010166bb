"""The operations components every agent runs with (issue 7), in start order.

``Agent`` adds them with one line; stop runs in reverse, so sd_notify's ``STOPPING=1`` goes
out first and the control socket writes the final ``stopped`` status after the others.
"""

from __future__ import annotations

from . import logging_setup
from .config import Config
from .control import ControlServer
from .reload import ReloadComponent
from .sdnotify import SdNotifyComponent
from .service import Component


def components(config: Config) -> list[Component]:
    """Logging from the config, then: control socket, SIGHUP reload, sd_notify (last)."""
    logging_setup.apply_config(config)
    return [ControlServer(), ReloadComponent(), SdNotifyComponent()]
