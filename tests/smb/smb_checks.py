#!/usr/bin/env python3
"""SMB checks of a clustered Samba: one smbd per CTDB node, one shared directory.

Run by tests/tests/samba_smbd.rs against smbd on ctdb-rs nodes and against smbd on
Samba's own ctdbd, with PyPI's smbprotocol (a real SMB2/3 client).

usage: smb_checks.py PORT IP0 IP1 [IP2...]          every check, then "N passed, N failed"
       smb_checks.py --hold PORT IP0 IP1 [IP2...]   takes a lock and an open handle
            through IP0, prints "held", waits for a line on stdin, then checks that the
            handle, the lock and the files are all still intact (the caller kills a
            component in between)
"""

import os
import sys
import uuid

from smbprotocol.connection import Connection
from smbprotocol.exceptions import SMBResponseException
from smbprotocol.open import (
    CreateDisposition,
    CreateOptions,
    FilePipePrinterAccessMask,
    ImpersonationLevel,
    LockFlags,
    Open,
    ShareAccess,
    SMB2LockElement,
)
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

STATUS_LOCK_NOT_GRANTED = 0xC0000055
STATUS_FILE_LOCK_CONFLICT = 0xC0000054


class Node:
    """One SMB connection, session and tree connect to the share of one smbd."""

    def __init__(self, ip, port):
        # Guest sessions (the test share is "guest ok") cannot sign.
        self.conn = Connection(uuid.uuid4(), ip, port, require_signing=False)
        self.conn.connect(timeout=30)
        self.session = Session(self.conn, "guest", "guest", require_encryption=False)
        self.session.connect()
        self.tree = TreeConnect(self.session, rf"\\{ip}\share")
        self.tree.connect(require_secure_negotiate=False)

    def open(self, name, create=False):
        handle = Open(self.tree, name)
        handle.create(
            ImpersonationLevel.Impersonation,
            FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.GENERIC_WRITE,
            0,
            ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE | ShareAccess.FILE_SHARE_DELETE,
            CreateDisposition.FILE_OVERWRITE_IF if create else CreateDisposition.FILE_OPEN,
            CreateOptions.FILE_NON_DIRECTORY_FILE,
        )
        return handle

    def write_file(self, name, data):
        h = self.open(name, create=True)
        h.write(data, 0)
        h.close()

    def read_file(self, name):
        h = self.open(name)
        size = h.end_of_file
        data = h.read(0, size) if size else b""
        h.close()
        return data

    def close(self):
        self.conn.disconnect(True)


def lock_element(offset, length, flags):
    e = SMB2LockElement()
    e["offset"] = offset
    e["length"] = length
    e["flags"] = flags
    return e


def lock(handle, offset, length):
    """Exclusive lock that fails at once on a conflict; returns the NT status."""
    flags = LockFlags.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | LockFlags.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
    try:
        handle.lock([lock_element(offset, length, flags)])
        return 0
    except SMBResponseException as e:
        return e.status


def unlock(handle, offset, length):
    handle.lock([lock_element(offset, length, LockFlags.SMB2_LOCKFLAG_UNLOCK)])


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, what, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok: {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAILED: {what} {detail}", flush=True)


def file_crosses_nodes(c, nodes):
    data = os.urandom(200_000)
    nodes[0].write_file("cross.bin", data)
    for i, n in enumerate(nodes[1:], start=1):
        got = n.read_file("cross.bin")
        c.check(f"a file written through node 0 reads back byte for byte through node {i}",
                got == data, f"({len(got)} bytes)")


def locks_conflict_across_nodes(c, nodes):
    nodes[0].write_file("locked.bin", b"x" * 100)
    h0 = nodes[0].open("locked.bin")
    h1 = nodes[1].open("locked.bin")
    c.check("node 0 takes a byte-range lock", lock(h0, 0, 10) == 0)
    status = lock(h1, 5, 10)
    c.check("a conflicting lock through node 1 fails",
            status in (STATUS_LOCK_NOT_GRANTED, STATUS_FILE_LOCK_CONFLICT), f"(status 0x{status:08x})")
    c.check("a lock on another range through node 1 succeeds", lock(h1, 50, 10) == 0)
    unlock(h0, 0, 10)
    c.check("after node 0 unlocks, node 1 gets the lock", lock(h1, 5, 10) == 0)
    unlock(h1, 5, 10)
    unlock(h1, 50, 10)
    h0.close()
    h1.close()


def open_while_another_node_writes(c, nodes):
    nodes[0].write_file("shared.txt", b"first")
    keep = nodes[0].open("shared.txt")
    other = nodes[1].open("shared.txt")
    other.write(b"second through node 1", 0)
    other.close()
    got = keep.read(0, len(b"second through node 1"))
    c.check("a file kept open through node 0 sees what node 1 wrote and closed",
            got == b"second through node 1", f"({got!r})")
    keep.close()
    if len(nodes) > 2:
        c.check("node 2 reads it too", nodes[2].read_file("shared.txt") == b"second through node 1")


def hold(c, nodes):
    """Holds a handle and a lock through node 0 across whatever the caller does."""
    data = os.urandom(50_000)
    nodes[0].write_file("held.bin", data)
    h0 = nodes[0].open("held.bin")
    c.check("node 0 takes a lock before the fault", lock(h0, 0, 10) == 0)
    print("held", flush=True)
    sys.stdin.readline()
    status = lock(nodes[1].open("held.bin"), 0, 10)
    c.check("the lock is still held after the fault",
            status in (STATUS_LOCK_NOT_GRANTED, STATUS_FILE_LOCK_CONFLICT), f"(status 0x{status:08x})")
    c.check("the handle opened before the fault still reads", h0.read(0, len(data)) == data)
    unlock(h0, 0, 10)
    h0.close()
    # (Other handles may read the locked range only now: SMB locks are mandatory.)
    for i, n in enumerate(nodes):
        c.check(f"the file reads back through node {i} after the fault", n.read_file("held.bin") == data)
    h1 = nodes[1].open("held.bin")
    c.check("node 1 locks after node 0 let go", lock(h1, 0, 10) == 0)
    unlock(h1, 0, 10)
    h1.close()
    file_crosses_nodes(c, nodes)


def main(argv):
    holding = argv[:1] == ["--hold"]
    if holding:
        argv = argv[1:]
    port = int(argv[0])
    nodes = [Node(ip, port) for ip in argv[1:]]
    c = Checks()
    try:
        if holding:
            hold(c, nodes)
        else:
            file_crosses_nodes(c, nodes)
            locks_conflict_across_nodes(c, nodes)
            open_while_another_node_writes(c, nodes)
    except Exception as e:  # a protocol error is a failed check, with its reason
        c.check("no SMB error", False, f"({type(e).__name__}: {e})")
    finally:
        for n in nodes:
            try:
                n.close()
            except Exception:
                pass
    print(f"smb: {c.passed} passed, {c.failed} failed", flush=True)
    return 0 if c.failed == 0 and c.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
