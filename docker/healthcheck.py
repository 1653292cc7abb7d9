"""Container health probe: exit 0 if GET <url> answers 200 (url: argv[1] or $TRAJGYM_HEALTH_URL)."""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TRAJGYM_HEALTH_URL", "http://127.0.0.1:8000/readyz")
    try:
        with urllib.request.urlopen(url, timeout=4) as resp:
            return 0 if resp.status == 200 else 1
    except OSError as err:
        print(f"unhealthy: {url}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
