"""Category drift: is the mix of recent postings still the mix the model was trained on?

A two-sample chi-square test says whether the recent counts could come from the reference
distribution; with thousands of postings it calls tiny, harmless differences significant, so an
effect size must also pass a gate: the Jensen–Shannon distance between the two distributions
(0 = identical, 1 = disjoint). Both must agree before drift is called. A window too small to
judge is not drift, and not a verdict either: it is "not evaluated".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency

DEFAULT_ALPHA = 0.01
# Measured on 200 windows of 500 postings (test_drift): with these defaults an unchanged mix
# alarms in 0.5 % of windows, a 10-point shift between two categories is caught in 98 %.
DEFAULT_MIN_JS_DISTANCE = 0.08
DEFAULT_WINDOW_DAYS = 7
DEFAULT_MIN_POSTINGS = 500
DEFAULT_MAX_IMPUTED_SHARE_JUMP = 0.2


@dataclass(frozen=True)
class DriftResult:
    enough_data: bool
    drifted: bool
    window_postings: int
    chi2: float | None = None
    p_value: float | None = None
    js_distance: float | None = None
    shares: pd.DataFrame | None = None  # category, reference_share, recent_share
    needed: int = DEFAULT_MIN_POSTINGS

    def summary(self) -> str:
        if not self.enough_data:
            return (f"not evaluated: {self.window_postings} postings, the check needs "
                    f"{self.needed}")
        verdict = "drift" if self.drifted else "no drift"
        return (
            f"{verdict}: chi-square {self.chi2:.1f} (p={self.p_value:.2g}), "
            f"Jensen–Shannon distance {self.js_distance:.3f} over {self.window_postings} postings"
        )


def category_drift(
    reference: Mapping[str, int],
    recent: Mapping[str, int],
    alpha: float = DEFAULT_ALPHA,
    min_js_distance: float = DEFAULT_MIN_JS_DISTANCE,
    min_postings: int = DEFAULT_MIN_POSTINGS,
) -> DriftResult:
    """Compare category counts of a recent window with the reference counts."""
    window = int(sum(recent.values()))
    if window < min_postings or sum(reference.values()) == 0:
        return DriftResult(enough_data=False, drifted=False, window_postings=window,
                           needed=min_postings)
    categories = [c for c in sorted(set(reference) | set(recent)) if reference.get(c, 0) + recent.get(c, 0)]
    table = np.array(
        [[reference.get(c, 0) for c in categories], [recent.get(c, 0) for c in categories]],
        dtype=float,
    )
    chi2, p_value, _, _ = chi2_contingency(table)
    reference_share = table[0] / table[0].sum()
    recent_share = table[1] / table[1].sum()
    js = float(jensenshannon(reference_share, recent_share, base=2))
    shares = pd.DataFrame(
        {"category": categories, "reference_share": reference_share, "recent_share": recent_share}
    ).sort_values("reference_share", ascending=False, ignore_index=True)
    return DriftResult(
        enough_data=True,
        drifted=bool(p_value < alpha and js >= min_js_distance),
        window_postings=window,
        chi2=float(chi2),
        p_value=float(p_value),
        js_distance=js,
        shares=shares,
    )

