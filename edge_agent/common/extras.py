"""How to install an optional extra of this project, in one place.

The distribution is ``litert-edge-agent`` (``edge-agent`` on the package index is an unrelated
project, so ``pip install 'edge-agent[x]'`` would install someone else's code). It is installed
from this repository: a checkout (``pip install -e '.[x]'``) or a wheel built from it
(docs/operations.md, "Install on a device").
"""

from __future__ import annotations

DISTRIBUTION = "litert-edge-agent"


def pip_hint(extra: str) -> str:
    """``pip install ...`` for the extra ``extra``, both ways this project is installed."""
    return (f"pip install -e '.[{extra}]' in the checkout, or on a device "
            f"/opt/edge-agent/bin/pip install 'litert_edge_agent-VERSION-py3-none-any.whl"
            f"[{extra}]'")
