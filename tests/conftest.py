"""Suite-wide test settings (rootdir conftest: applies to tests/ and firmware_bridge/tests/).

Hypothesis: no per-example deadline (CI machines are shared and noisy; speed is measured in
benchmarks/, never asserted in tests). On CI (CI=true) examples are derived from the test
itself, so a red run can be reproduced exactly.
"""

import os

from hypothesis import settings

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")
