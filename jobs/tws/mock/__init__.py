"""A mock HWA master: a real HTTP server speaking the REST API v2 subset Resync uses (and the v1
calls of HCL's published samples), driven by a deterministic plan simulator.

    server = MockHwaServer(scenario="demo", port=0, speed=0).start()   # tests: in-process, real socket
    manage.py mock_tws --port 31116 --scenario demo --speed 10         # its own process

See docs/hwa.md for scenarios, fault injection and the control endpoint.
"""
