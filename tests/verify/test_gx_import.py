"""``gx_runner.load_gx`` defers scipy.stats and altair (half of Great Expectations' import memory)
until an expectation that needs them touches them; each check runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

INCLUDE = Path(__file__).resolve().parents[2] / "include"

PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from hisops.verify import gx_runner
gx = gx_runner.load_gx()
after_import = {
    "scipy.stats": "scipy.stats._stats_py" in sys.modules,
    "altair": "altair.vegalite" in sys.modules,
    "gx": hasattr(gx, "get_context"),
}
from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl
from scipy import stats
touched = {
    "entropy": round(float(stats.entropy([0.5, 0.5])), 4),
    "chart": kl.alt.Chart.__name__,
    "scipy.stats": "scipy.stats._stats_py" in sys.modules,
    "altair": "altair.vegalite" in sys.modules,
}
print(json.dumps({"after_import": after_import, "touched": touched}))
"""


def _probe() -> dict[str, dict[str, object]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(INCLUDE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_gx_imports_without_scipy_stats_and_altair_and_loads_them_when_touched():
    got = _probe()

    assert got["after_import"] == {"scipy.stats": False, "altair": False, "gx": True}
    assert got["touched"] == {
        "entropy": 0.6931,
        "chart": "Chart",
        "scipy.stats": True,
        "altair": True,
    }
