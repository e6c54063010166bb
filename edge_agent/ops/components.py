"""The operations components every agent runs with (issue 7), in start order.

``edge-agent run`` adds them with one line; stop runs in reverse, so sd_notify's ``STOPPING=1`` goes
out first and the control socket writes the final ``stopped`` status after the others.
"""

from __future__ import annotations

from ..component import Component
from ..config import Config
from .control import ControlServer
from .reload import ReloadComponent
from .sdnotify import SdNotifyComponent


def components(config: Config) -> list[Component]:
    """SIGHUP reload (installed before the control socket logs that it serves), control
    socket, sd_notify (last, so it stops first)."""
    return [ReloadComponent(), ControlServer(), SdNotifyComponent()]
