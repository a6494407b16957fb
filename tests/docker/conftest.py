"""The proxy's attack tests (test_proxy_attacks.py: ~2 min, ~1 GB through loopback) are
collected only when NICA_PROXY_ATTACKS=1: they are a fault run with figures, as the
benchmarks are, not part of every test run (docs/tests.md)."""

from __future__ import annotations

import os

collect_ignore = [] if os.environ.get("NICA_PROXY_ATTACKS") == "1" else ["test_proxy_attacks.py"]
