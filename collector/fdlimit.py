"""Open files for a run: every in-flight model or env request holds a socket.

A run of N episodes in flight keeps up to `model_concurrency + env_concurrency` pooled
connections open, plus the store, logs and the resolver's sockets. Many systems start a
process with a soft RLIMIT_NOFILE of 1,024, where a 1,000-in-flight run fails with
"Too many open files" (each failure an infrastructure error, the episodes retried and
then recorded as `infra_error`). `ensure_open_files` raises the soft limit to what the
run needs, up to the hard limit (which only the administrator can raise: `ulimit -Hn`,
systemd's `LimitNOFILE`, the container's `--ulimit nofile`), and warns when even the hard
limit is too low. It never lowers a limit.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("trajgym.collector")

SPARE_FILES = 256  # store, logs, DNS, the event loop's own descriptors


def files_needed(model_concurrency: int, env_concurrency: int) -> int:
    return model_concurrency + env_concurrency + SPARE_FILES


def ensure_open_files(needed: int) -> int:
    """Soft RLIMIT_NOFILE raised to `needed` (at most the hard limit); the soft limit in force after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as err:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, err)
    if soft < needed:
        log.warning("this run may hold %d sockets at once but the open-file limit is %d (hard limit %s): "
                    "requests past it fail as infrastructure errors; raise the hard limit or lower --concurrency",
                    needed, soft, hard)
    return soft
