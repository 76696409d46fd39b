"""Docker HEALTHCHECK: is the Ray head's GCS healthy? Exit 0 if so, 1 otherwise (one line on stderr).

Asks ``$RAY_HEAD_URL/api/gcs_healthz`` (default ``http://127.0.0.1:8265``, the container's own
dashboard; a worker points it at the head, e.g. ``http://ray-head:8265``). That endpoint is public
under Ray's token auth, so the probe needs no token.
"""

import os
import sys
import urllib.request

URL = os.environ.get("RAY_HEAD_URL", "http://127.0.0.1:8265").rstrip("/") + "/api/gcs_healthz"

try:
    with urllib.request.urlopen(URL, timeout=8) as r:
        ok = r.status == 200
except OSError as e:
    print(f"healthcheck: {URL}: {e}", file=sys.stderr)
    sys.exit(1)
if not ok:
    print(f"healthcheck: {URL}: HTTP {r.status}", file=sys.stderr)
sys.exit(0 if ok else 1)
