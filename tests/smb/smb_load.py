#!/usr/bin/env python3
"""SMB load for ctdb-bench's smbd comparison: CONNS connections, spread round-robin over
the given smbd addresses, each opening and closing one shared file as fast as it can
for SECONDS. Every open of the file from another node than the last migrates its
locking records (share modes, leases) between the CTDB nodes.

usage: smb_load.py PORT SECONDS CONNS IP0 [IP1...]
prints: "opens N seconds S" (all connections together)
"""

import multiprocessing
import sys
import time

from smb_checks import Node


def worker(ip, port, seconds, start, results):
    node = Node(ip, port)
    start.wait()
    opens = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        node.open("hot.bin").close()
        opens += 1
    node.close()
    results.put(opens)


def main(argv):
    port, seconds, conns = int(argv[0]), float(argv[1]), int(argv[2])
    ips = argv[3:]
    Node(ips[0], port).write_file("hot.bin", b"hot")
    start = multiprocessing.Barrier(conns + 1)
    results = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=worker, args=(ips[i % len(ips)], port, seconds, start, results))
        for i in range(conns)
    ]
    for p in procs:
        p.start()
    start.wait()
    began = time.monotonic()
    total = sum(results.get() for _ in procs)
    for p in procs:
        p.join()
    print(f"opens {total} seconds {time.monotonic() - began:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
