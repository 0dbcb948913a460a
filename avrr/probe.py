"""`python -m avrr.probe URL`: exit 0 when URL answers 200, 1 otherwise.

The containers' health check (docker-compose.yml): the image has Python but no curl,
and a probe that only imports the standard library costs little every few seconds.
"""
import sys
import urllib.error
import urllib.request
from typing import List, Optional

TIMEOUT_S = 5.0


def answers(url: str, timeout_s: float = TIMEOUT_S) -> bool:
    """Whether `url` (http only) answers 200 within `timeout_s`."""
    if not url.startswith("http://"):
        raise ValueError("the probe asks http:// URLs only")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:  # noqa: S310 - http only
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m avrr.probe http://HOST:PORT/ready", file=sys.stderr)
        return 2
    return 0 if answers(args[0]) else 1


if __name__ == "__main__":
    sys.exit(main())
