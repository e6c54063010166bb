"""Telemetry: latency histograms, resource sampler, metrics snapshot (issue #3).

Names are loaded on first use (``lazy_loader``, from the names in ``__init__.pyi``), so
importing one pure module of the package does not import the rest.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
