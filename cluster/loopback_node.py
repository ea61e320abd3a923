"""`ray start` for a worker node on the head's own machine, kept on 127.0.0.1 (tests, local-multinode.sh).

A loopback head runs in Ray's single-machine mode (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: every server
binds 127.0.0.1), and in that mode `ray start --address` refuses to add a node; with the mode off, Ray
replaces --node-ip-address=127.0.0.1 by the machine's outward address, which a loopback head cannot
reach. This runs Ray's own `ray start` CLI with only the refusal lifted and the node's address kept
at 127.0.0.1; the environment (single-machine mode on) is inherited by every process the node starts.

Usage: python cluster/loopback_node.py --address=127.0.0.1:PORT --temp-dir=DIR --num-cpus=N [ray start options]
"""

from __future__ import annotations

import os
import sys

# Before Ray is imported, for this node and every process it starts: loopback only, token auth on.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_AUTH_MODE"] = "token"

from ray._private import (
    ray_constants,
    services,
)
from ray.scripts.scripts import main


def _loopback_ip(address: str | None = None) -> str:
    return "127.0.0.1"


ray_constants.ENABLE_RAY_CLUSTER = True  # lets `ray start --address` add this node
services.get_node_ip_address = _loopback_ip  # ...without Ray swapping 127.0.0.1 for the outward address

if __name__ == "__main__":
    sys.argv = ["ray", "start", "--node-ip-address=127.0.0.1", *sys.argv[1:]]
    sys.exit(main())
