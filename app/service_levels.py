"""The five-level service scale (../shared/service-levels.md): grading a
shop's measured figures, per channel and overall, naming the weakest
dimension and what the next level takes. Pure functions over the figures of
`app.support_metrics`; the thresholds are the document's defaults, marked
(c) there where they are our calibration.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

LEVELS = ("unacceptable", "below_average", "average", "above_average", "stellar")
MIN_SAMPLE = 20  # responses (satisfaction), tickets (times), delayed orders (proactivity)

HOUR, MINUTE, DAY = 3600, 60, 86400
LT, LE, GE, GT = operator.lt, operator.le, operator.ge, operator.gt
_SYMBOL = {LT: "under", LE: "at most", GE: "at least", GT: "more than"}


@dataclass(frozen=True)
class Bound:
    level: str
    compare: Callable[[float, float], bool]
    limit: float


# Best level first: a value gets the first level whose bound it meets.
FIRST_RESPONSE: dict[str, tuple[Bound, ...]] = {
    "email": (
        Bound("stellar", LT, 1 * HOUR), Bound("above_average", LT, 4 * HOUR),
        Bound("average", LE, 24 * HOUR), Bound("below_average", LE, 72 * HOUR),
    ),
    "social": (
        Bound("stellar", LT, 15 * MINUTE), Bound("above_average", LT, 4 * HOUR),
        Bound("average", LE, 24 * HOUR), Bound("below_average", LE, 72 * HOUR),
    ),
    "real_time": (
        Bound("stellar", LT, 1 * MINUTE), Bound("above_average", LT, 5 * MINUTE),
        Bound("average", LE, 10 * MINUTE), Bound("below_average", LE, 60 * MINUTE),
    ),
}  # fmt: skip
_SLOW_RESOLUTION = (
    Bound("stellar", LE, 4 * HOUR), Bound("above_average", LE, 8 * HOUR),
    Bound("average", LE, 1 * DAY), Bound("below_average", LE, 7 * DAY),
)  # fmt: skip
RESOLUTION: dict[str, tuple[Bound, ...]] = {
    "email": _SLOW_RESOLUTION,
    "social": _SLOW_RESOLUTION,
    "real_time": (
        Bound("stellar", LE, 10 * MINUTE), Bound("above_average", LE, 30 * MINUTE),
        Bound("average", LE, 1 * HOUR), Bound("below_average", LE, 4 * HOUR),
    ),
}  # fmt: skip
SATISFACTION = (
    Bound("stellar", GE, 4.9), Bound("above_average", GE, 4.8),
    Bound("average", GE, 4.0), Bound("below_average", GE, 3.0),
)  # fmt: skip
PROACTIVITY = (  # proactive coverage, percent
    Bound("stellar", GE, 90), Bound("above_average", GE, 70),
    Bound("average", GE, 40), Bound("below_average", GT, 0),
)  # fmt: skip
CHANNELS = (  # channels with tickets in the period (c): "1" is unacceptable, "2" average
    Bound("stellar", GE, 4), Bound("above_average", GE, 3), Bound("average", GE, 2),
)  # fmt: skip


def channel_group(channel: str) -> str:
    if channel in ("chat", "sms", "phone"):
        return "real_time"
    return "social" if channel == "social" else "email"


def grade(value: float, bounds: tuple[Bound, ...]) -> tuple[str, Bound | None]:
    """The level `value` reaches, and the bound of the level above it (None at the top)."""
    above = None
    for bound in bounds:
        if bound.compare(value, bound.limit):
            return bound.level, above
        above = bound
    return "unacceptable", above


def _dimension(name: str, value: float | None, sample: int, bounds, unit: str) -> dict:
    if value is None or sample < MIN_SAMPLE:
        return {"dimension": name, "level": None, "value": value, "sample": sample,
                "note": f"not enough data ({sample} of {MIN_SAMPLE} needed)"}  # fmt: skip
    level, above = grade(value, bounds)
    note = (
        f"{name} is {_show(value, unit)}; {_SYMBOL[above.compare]} {_show(above.limit, unit)} "
        f"reaches {above.level.replace('_', ' ')}"
        if above
        else f"{name} is {_show(value, unit)}: the top level"
    )
    return {"dimension": name, "level": level, "value": value, "sample": sample, "note": note}


def _show(value: float, unit: str) -> str:
    if unit == "seconds":
        hours, rest = divmod(int(value), 3600)
        return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"
    if unit == "percent":
        return f"{value:g}%"
    return f"{value:g}"


def weakest(dimensions: list[dict]) -> dict | None:
    graded = [d for d in dimensions if d["level"] is not None]
    return min(graded, key=lambda d: LEVELS.index(d["level"])) if graded else None


def scorecard(per_group: dict[str, dict], overall: dict) -> dict:
    """Levels per channel group and overall. `per_group` maps a channel group
    to its figures (first_response, resolution); `overall` holds the shop's
    figures (average_rating with csat counts, proactive_coverage, channels).
    The overall level is the lowest graded dimension: a team is as good as its
    weakest measured link."""
    channels: dict[str, dict] = {}
    every: list[dict] = []
    for group, figures in sorted(per_group.items()):
        dims = [
            _dimension(f"first response on {group.replace('_', '-')}",
                       figures["first_response"]["average_seconds"],
                       figures["first_response"]["count"], FIRST_RESPONSE[group], "seconds"),
            _dimension(f"resolution on {group.replace('_', '-')}",
                       figures["resolution"]["average_seconds"],
                       figures["resolution"]["count"], RESOLUTION[group], "seconds"),
        ]  # fmt: skip
        low = weakest(dims)
        channels[group] = {"level": low["level"] if low else None, "dimensions": dims}
        every += dims
    shop_wide = [
        _dimension("average rating", overall["average_rating"], overall["csat"]["of"],
                   SATISFACTION, "rating"),
        _dimension("proactive coverage", overall["proactive_coverage"]["percent"],
                   overall["proactive_coverage"]["of"], PROACTIVITY, "percent"),
        _dimension("channels offered", len(overall["channels"]), MIN_SAMPLE
                   if overall["channels"] else 0, CHANNELS, "channels"),
    ]  # fmt: skip
    every += shop_wide
    low = weakest(every)
    return {
        "overall": low["level"] if low else None,
        "weakest": low,
        "channels": channels,
        "dimensions": shop_wide,
    }
