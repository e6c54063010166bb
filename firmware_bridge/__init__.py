"""Firmware bridge: the serial protocol between the agent and the board's controller.

Pure protocol (no I/O): :mod:`.crc`, :mod:`.cobs`, :mod:`.framing`, :mod:`.messages`.
I/O: :mod:`.link` (pyserial port + reader thread + reconnect), :mod:`.client` (requests/events).
The wire format is specified in ``PROTOCOL.md``; the C side lives in ``firmware/``.

Names are loaded on first use (``lazy_loader``, from the names in ``__init__.pyi``), so
importing one pure module of the package does not import the rest.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
