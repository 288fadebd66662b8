"""Readiness check for HWA (listed in settings.READINESS_CHECKS).

Not required: Resync keeps answering from the (stale) snapshot when HWA is down, so HWA being
unreachable is reported on /readyz but does not take this instance out of the load balancer.
"""

from __future__ import annotations

from resync_site.health import CheckResult


def check_hwa() -> CheckResult:
    from jobs.selectors import plan_freshness
    from jobs.tws.client import get_client
    from jobs.tws.errors import HwaError

    client = get_client()
    try:
        info = client.engine_info()
    except HwaError as exc:
        return CheckResult("hwa", ok=False, required=False, detail=f"{exc.code}: {exc.message[:200]} (circuit {client.breaker.state})")
    except Exception as exc:  # reported, not raised: readiness must always answer
        return CheckResult("hwa", ok=False, required=False, detail=f"{type(exc).__name__}: {exc}")
    try:
        fresh = plan_freshness()
        age = f"{fresh.age_seconds:.0f} s" if fresh.age_seconds is not None else "never"
        plan = f"; snapshot {'stale' if fresh.stale else 'fresh'}, age {age}"
    except Exception:  # the database check reports database trouble
        plan = ""
    return CheckResult("hwa", ok=True, required=False, detail=f"{info.display_version or 'HWA'} at {client.base_url}{plan}")
