"""Numbers rounded to what their confidence intervals support, for the summaries people read.

A Dice of ``0.7955386`` with a 95 % CI of ``[0.72, 0.87]`` is ``0.80 [0.72, 0.87]``: the value and its bounds
keep one digit more than the first significant digit of the CI's width, so no digit is printed that the CI says
is noise. Without a CI a number keeps :data:`DEFAULT_SIGNIFICANT` significant digits. Pure Python, no numpy.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["DEFAULT_SIGNIFICANT", "MAX_DECIMALS", "finite", "decimals_for_ci", "round_value", "fmt", "fmt_ci",
           "fmt_p", "fmt_share"]

#: Significant digits of a number shown without a CI.
DEFAULT_SIGNIFICANT = 2
#: No summary number needs more decimals than this.
MAX_DECIMALS = 4


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing, not a number, NaN or infinite.

    Args:
        value: anything read from ``report.json``.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _decimals_significant(value: float, significant: int) -> int:
    if value == 0:
        return significant - 1
    return max(0, min(MAX_DECIMALS, significant - 1 - math.floor(math.log10(abs(value)))))


def decimals_for_ci(lo: Any, hi: Any, *, value: Any = None) -> int:
    """Decimals that the CI ``[lo, hi]`` supports: one more than the first significant digit of its width.

    Args:
        lo: lower bound.
        hi: upper bound.
        value: the estimate, used (at :data:`DEFAULT_SIGNIFICANT` digits) when the CI is missing or empty.

    Example:
        >>> decimals_for_ci(0.72, 0.87)
        2
        >>> decimals_for_ci(2.1, 6.3)
        1
    """
    a, b = finite(lo), finite(hi)
    if a is None or b is None or b - a <= 0:
        v = finite(value)
        return _decimals_significant(v, DEFAULT_SIGNIFICANT) if v is not None else 2
    return max(0, min(MAX_DECIMALS, 1 - math.floor(math.log10(b - a))))


def round_value(value: Any, decimals: int) -> float | None:
    """``value`` rounded to ``decimals`` (None when not finite).

    Args:
        value: the number.
        decimals: decimal places.
    """
    v = finite(value)
    return None if v is None else round(v, decimals)


def fmt(value: Any, decimals: int | None = None, *, signed: bool = False) -> str:
    """A number for people: ``decimals`` places (default: :data:`DEFAULT_SIGNIFICANT` significant digits), or
    ``n/a`` when it is missing.

    Args:
        value: the number.
        decimals: decimal places.
        signed: print ``+`` before positive values (differences).

    Example:
        >>> fmt(0.012345), fmt(1234.5), fmt(None), fmt(0.05, 2, signed=True)
        ('0.012', '1234', 'n/a', '+0.05')
    """
    v = finite(value)
    if v is None:
        return "n/a"
    d = _decimals_significant(v, DEFAULT_SIGNIFICANT) if decimals is None else decimals
    text = f"{v:.{d}f}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]  # no "-0.00"
    return f"+{text}" if signed and not text.startswith("-") and float(text) != 0 else text


def fmt_ci(value: Any, lo: Any, hi: Any, *, signed: bool = False) -> str:
    """``value [lo, hi]`` rounded to what the CI supports (the value alone when the CI is missing).

    Args:
        value: the estimate.
        lo: lower 95 % bound.
        hi: upper 95 % bound.
        signed: print ``+`` before positive numbers.

    Example:
        >>> fmt_ci(0.7955386, 0.7207386739645241, 0.8703629694455441)
        '0.80 [0.72, 0.87]'
    """
    d = decimals_for_ci(lo, hi, value=value)
    if finite(lo) is None or finite(hi) is None:
        return fmt(value, d, signed=signed)
    return f"{fmt(value, d, signed=signed)} [{fmt(lo, d, signed=signed)}, {fmt(hi, d, signed=signed)}]"


def fmt_p(p: Any) -> str:
    """A p-value as ``p = 0.03`` / ``p < 0.001`` (``p n/a`` when missing).

    Args:
        p: the p-value.
    """
    v = finite(p)
    if v is None:
        return "p n/a"
    return "p < 0.001" if v < 0.001 else f"p = {fmt(v, 3 if v < 0.01 else 2)}"


def fmt_share(share: Any) -> str:
    """A share in 0..1 as a whole percentage (``n/a`` when missing).

    Args:
        share: the share.
    """
    v = finite(share)
    return "n/a" if v is None else f"{100 * v:.0f} %"
