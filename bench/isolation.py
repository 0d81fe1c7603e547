"""A benchmark's own Redis database on the shared embedded test server.

``devstack exec --test`` hands every benchmark Redis database 0, so benchmarks running at the same time
overwrite each other's quote cache (one writes ETH at 3,000 while another's sandbox trades it at
1,800). A benchmark that reads quotes claims a free database (1–15) the same way ``devstack test``
does for a test run, and flushes it when done.
"""

from __future__ import annotations

import atexit
import os


def claim_redis_db() -> str:
    """Point ``REDIS_URL`` at a database of our own for the rest of this process; returns the URL.
    Call before Django is set up."""
    from xbit_admin.devstack import _claim_redis_db, _release_redis_db

    base = os.environ["REDIS_URL"].rpartition("/")[0]
    run_id = os.getpid()
    index = _claim_redis_db(base, run_id)
    atexit.register(_release_redis_db, base, index, run_id)
    os.environ["REDIS_URL"] = f"{base}/{index}"
    return os.environ["REDIS_URL"]
