"""Numbers as people read them in command output, cards and reports."""

from __future__ import annotations


def percent(rate: float | None) -> str:
    """A share in [0, 1] as a percentage: ``15.8 %``, ``100 %``, ``0.05 %`` (two significant digits below 10 %)."""
    if rate is None:
        return "unknown"
    value = 100.0 * float(rate)
    if value >= 10.0 or value == 0.0:
        return f"{value:.0f} %" if value == round(value) else f"{value:.1f} %"
    return f"{value:.2g} %"
