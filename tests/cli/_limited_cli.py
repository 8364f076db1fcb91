"""The real ``cleanfit`` command with a file size limit: a full disk, simulated for the disk tests.

    python tests/cli/_limited_cli.py BYTES train CONFIG.toml [cleanfit options ...]

Sets ``RLIMIT_FSIZE`` to BYTES for this process (and ignores SIGXFSZ), so that writing any file past
BYTES fails with ``EFBIG`` the way a full disk fails with ``ENOSPC``: the same ``OSError`` path, at
the same writes, without root or a tmpfs. (A real 2 MiB tmpfs gave the same results by hand; see
docs/INTERNALS.md, "Files, locks and signals".)
"""

from __future__ import annotations

import resource
import signal
import sys


def main(argv: list[str]) -> None:
    limit = int(argv[0])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from cleanfit.cli.main import main as cleanfit

    cleanfit(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
