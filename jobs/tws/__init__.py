"""Talking to HCL Workload Automation (HWA) over its REST API v2.

- `client.HwaClient`: the httpx client (auth, TLS, timeouts, retries, circuit breaker, paging).
- `models`: typed pydantic views of the HWA objects Resync reads.
- `oql`: building OQL filters safely from values a person typed.
- `errors`: the typed errors every call raises instead of crashing.
- `mock/`: a mock HWA server with a plan simulator (``manage.py mock_tws``).
"""
