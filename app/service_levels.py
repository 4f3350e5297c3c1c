"""The five-level service scale (../shared/service-levels.md): grading a
shop's measured figures, per channel and overall, naming the weakest
dimension and what the next level takes. Pure functions over the figures of
`app.support_metrics`; the thresholds are the document's defaults, marked
(c) there where they are our calibration.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field, replace

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


@dataclass(frozen=True)
class Scale:
    """The bounds a shop is graded on: ours, or with the shop's own limits
    (`scale_for`); the comparisons (under, at most, at least) stay ours."""

    first_response: dict[str, tuple[Bound, ...]] = field(default_factory=lambda: FIRST_RESPONSE)
    resolution: dict[str, tuple[Bound, ...]] = field(default_factory=lambda: RESOLUTION)
    satisfaction: tuple[Bound, ...] = SATISFACTION
    proactivity: tuple[Bound, ...] = PROACTIVITY
    min_sample: int = MIN_SAMPLE


GROUPS = ("email", "social", "real_time")


def _with_limits(bounds: tuple[Bound, ...], limits: dict) -> tuple[Bound, ...]:
    return tuple(replace(b, limit=float(limits.get(b.level, b.limit))) for b in bounds)


def scale_for(overrides: dict) -> Scale:
    """Our scale with the shop's limits where it gave them: a JSON object
    like {"first_response": {"email": {"stellar": 1800}}, "satisfaction":
    {"average": 4.2}, "min_sample": 30} (seconds, ratings, percent)."""
    first = overrides.get("first_response", {})
    resolution = overrides.get("resolution", {})
    return Scale(
        {g: _with_limits(FIRST_RESPONSE[g], first.get(g, {})) for g in GROUPS},
        {g: _with_limits(RESOLUTION[g], resolution.get(g, {})) for g in GROUPS},
        _with_limits(SATISFACTION, overrides.get("satisfaction", {})),
        _with_limits(PROACTIVITY, overrides.get("proactivity", {})),
        int(overrides.get("min_sample", MIN_SAMPLE)),
    )


def problem(scale: Scale) -> str | None:
    """Why a scale cannot grade (a better level must have a stricter bound)."""
    named = [(f"first_response.{g}", b) for g, b in scale.first_response.items()]
    named += [(f"resolution.{g}", b) for g, b in scale.resolution.items()]
    named += [("satisfaction", scale.satisfaction), ("proactivity", scale.proactivity)]
    for name, bounds in named:
        limits = [b.limit for b in bounds]
        lower_is_better = bounds[0].compare in (LT, LE)
        if limits != sorted(limits, reverse=not lower_is_better):
            better = "shorter" if lower_is_better else "higher"
            return f"{name}: each better level needs a {better} bound than the one below it"
    return None


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


def _dimension(
    name: str, value: float | None, sample: int, bounds, unit: str, minimum: int = MIN_SAMPLE
) -> dict:
    if value is None or sample < minimum:
        return {"dimension": name, "level": None, "value": value, "sample": sample,
                "note": f"not enough data ({sample} of {minimum} needed)"}  # fmt: skip
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


def scorecard(per_group: dict[str, dict], overall: dict, scale: Scale | None = None) -> dict:
    """Levels per channel group and overall. `per_group` maps a channel group
    to its figures (first_response, resolution); `overall` holds the shop's
    figures (average_rating with csat counts, proactive_coverage, channels).
    The overall level is the lowest graded dimension: a team is as good as its
    weakest measured link. `scale`: the shop's (`scale_for`), else ours."""
    scale = scale or Scale()
    least = scale.min_sample
    channels: dict[str, dict] = {}
    every: list[dict] = []
    for group, figures in sorted(per_group.items()):
        dims = [
            _dimension(f"first response on {group.replace('_', '-')}",
                       figures["first_response"]["average_seconds"],
                       figures["first_response"]["count"], scale.first_response[group], "seconds",
                       least),
            _dimension(f"resolution on {group.replace('_', '-')}",
                       figures["resolution"]["average_seconds"],
                       figures["resolution"]["count"], scale.resolution[group], "seconds", least),
        ]  # fmt: skip
        low = weakest(dims)
        channels[group] = {"level": low["level"] if low else None, "dimensions": dims}
        every += dims
    shop_wide = [
        _dimension("average rating", overall["average_rating"], overall["csat"]["of"],
                   scale.satisfaction, "rating", least),
        _dimension("proactive coverage", overall["proactive_coverage"]["percent"],
                   overall["proactive_coverage"]["of"], scale.proactivity, "percent", least),
        _dimension("channels offered", len(overall["channels"]), least
                   if overall["channels"] else 0, CHANNELS, "channels", least),
    ]  # fmt: skip
    every += shop_wide
    low = weakest(every)
    return {
        "overall": low["level"] if low else None,
        "weakest": low,
        "channels": channels,
        "dimensions": shop_wide,
    }
