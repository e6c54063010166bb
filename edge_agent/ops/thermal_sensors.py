"""Where the governor's readings come from: the SoC's thermal zones, the Raspberry Pi's
throttled flags, and (handed in) the firmware bridge's board temperature and power.

* ``<root>/sys/class/thermal/thermal_zone*/temp`` (millidegrees C), named by the ``type`` file
  beside it (``cpu-thermal``, ``x86_pkg_temp``...). ``root`` is ``/`` on a device and a fake
  tree in tests.
* Raspberry Pi throttled flags: ``<root>/sys/devices/platform/soc/soc:firmware/get_throttled``
  (hex, the firmware driver's node), else ``vcgencmd get_throttled`` (``throttled=0x50005``).
  Bits 0-3 now: under-voltage, ARM frequency capped, throttled, soft temperature limit; bits
  16-19 the same since boot (sticky).

A file that is missing is no reading (a board without that sensor); one that holds garbage is
reported once per sensor in :attr:`SensorReader.problems` (the component logs it) and skipped.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

THERMAL_DIR = "sys/class/thermal"
THROTTLED_NODE = "sys/devices/platform/soc/soc:firmware/get_throttled"
VCGENCMD_TIMEOUT_S = 2.0

_BITS = ("undervoltage", "freq_capped", "throttled", "soft_temp_limit")


class SensorError(ValueError):
    """A sensor file or command gave something that is not a reading."""


@dataclass(frozen=True)
class Throttled:
    """The Raspberry Pi's ``get_throttled`` word, decoded."""

    raw: int

    def now(self, name: str) -> bool:
        return bool(self.raw >> _BITS.index(name) & 1)

    def since_boot(self, name: str) -> bool:
        return bool(self.raw >> (16 + _BITS.index(name)) & 1)

    @property
    def limiting(self) -> bool:
        """Capped, throttled or at the soft temperature limit now."""
        return any(self.now(n) for n in _BITS[1:])

    def to_json(self) -> dict[str, object]:
        return {
            "raw": f"0x{self.raw:x}",
            "now": [n for n in _BITS if self.now(n)],
            "since_boot": [n for n in _BITS if self.since_boot(n)],
        }


def parse_throttled(text: str, where: str) -> Throttled:
    """``0x50005``, ``50005`` or ``throttled=0x50005``."""
    s = text.strip()
    if "=" in s:
        s = s.split("=", 1)[1].strip()
    try:
        value = int(s, 16)
    except ValueError:
        raise SensorError(f"{where}: {text.strip()[:40]!r} is not a hex throttled word") from None
    if value < 0 or value >> 32:
        raise SensorError(f"{where}: throttled word {s} out of range")
    return Throttled(value)


def parse_millidegrees(text: str, where: str) -> float:
    try:
        value = int(text.strip())
    except ValueError:
        raise SensorError(f"{where}: {text.strip()[:40]!r} is not millidegrees") from None
    if not -60_000 <= value <= 200_000:
        raise SensorError(f"{where}: {value / 1000:g} °C is not a plausible temperature")
    return value / 1000.0


class SensorReader:
    """Reads the zones (optionally only the ``zones`` types named) and the throttled word."""

    def __init__(
        self, root: Path = Path("/"), *, zones: tuple[str, ...] = (), vcgencmd: bool = True
    ) -> None:
        self.root = Path(root)
        self.zones = zones
        self.vcgencmd = shutil.which("vcgencmd") if vcgencmd else None
        self.problems: dict[str, str] = {}  # sensor -> the last problem (the component logs)

    def temperatures(self) -> dict[str, float]:
        out: dict[str, float] = {}
        base = self.root / THERMAL_DIR
        try:
            zones = sorted(base.glob("thermal_zone*"))
        except OSError:
            return out
        for z in zones:
            try:
                kind = (z / "type").read_text().strip() or z.name
            except OSError:
                kind = z.name
            if self.zones and kind not in self.zones:
                continue
            name = kind if kind not in out else f"{kind}:{z.name}"
            try:
                out[name] = parse_millidegrees((z / "temp").read_text(), str(z / "temp"))
                self.problems.pop(name, None)
            except OSError as exc:
                self.problems[name] = f"{z / 'temp'}: {exc.strerror or exc}"
            except SensorError as exc:
                self.problems[name] = str(exc)
        return out

    def throttled(self) -> Throttled | None:
        node = self.root / THROTTLED_NODE
        try:
            text = node.read_text()
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            self.problems["throttled"] = f"{node}: {exc.strerror or exc}"
            return None
        where = str(node)
        if not text and self.vcgencmd:
            where = "vcgencmd get_throttled"
            try:
                text = subprocess.run(
                    [self.vcgencmd, "get_throttled"], capture_output=True, text=True,
                    timeout=VCGENCMD_TIMEOUT_S, check=True,
                ).stdout
            except (OSError, subprocess.SubprocessError) as exc:
                self.problems["throttled"] = f"{where}: {exc}"
                return None
        if not text:
            return None
        try:
            t = parse_throttled(text, where)
        except SensorError as exc:
            self.problems["throttled"] = str(exc)
            return None
        self.problems.pop("throttled", None)
        return t
