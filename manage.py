#!/usr/bin/env python
from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resync_site.settings")
    from django.core.management import execute_from_command_line

    from resync_site.lib.env import EnvError

    try:
        execute_from_command_line(sys.argv)
    except EnvError as exc:
        # A configuration mistake is the operator's to fix: one line naming the variable, no traceback.
        sys.exit(f"Resync cannot start: {exc}")


if __name__ == "__main__":
    main()
