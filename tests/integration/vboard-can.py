#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vboard's SocketCAN layer as a program sees it, through Python's own
socket module (no flashd):

    vboard --board ebb36-v1.2 --can can0 --can-uuid 0123456789ab -- python3 vboard-can.py

if_nametoindex and the net device in sysfs (type 280); a frame written by
one socket reaches another (loopback) and the node; CAN_RAW_FILTER keeps
other ids out; select() readiness; EINVAL for a short write; ENETDOWN
while the interface is down; ENOBUFS while it is bus-off; the node answers
the admin query and Klipper's reboot turns it into Katapult.
"""
import errno
import os
import select
import socket
import struct
import time

import harness
from jobs_helpers import Boards, check

FMT = "<IB3x8s"
UUID = bytes.fromhex("0123456789ab")


def sock(filters=None):
    s = socket.socket(socket.PF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
    if filters is not None:
        s.setsockopt(socket.SOL_CAN_RAW, socket.CAN_RAW_FILTER,
                     b"".join(struct.pack("<II", i, m) for i, m in filters))
    s.bind(("can0",))
    s.setblocking(False)
    return s


def frame(can_id, data):
    return struct.pack(FMT, can_id, len(data), data)


def recv(s, timeout=5.0):
    r, _, _ = select.select([s], [], [], timeout)
    check(r, "socket readable")
    can_id, n, data = struct.unpack(FMT, s.recv(16))
    return can_id, data[:n]


def test_interface():
    check(socket.if_nametoindex("can0") >= 40, "can0 has an index")
    with open("/sys/class/net/can0/type") as f:
        check(f.read().strip() == "280", "net device of type 280 (ARPHRD_CAN)")


def test_loopback_filter_and_node():
    a = sock()
    b = sock(filters=[(0x123, 0x7ff)])
    admin = sock(filters=[(0x3f1, 0x7ff)])
    # Each socket reaches the virtual bus over its own connection: the bus
    # may see a's frames before b's bind and filter (a kernel would not).
    # Frames of one socket stay in order, which is all a program relies on.
    time.sleep(0.3)
    a.send(frame(0x124, b"x"))
    a.send(frame(0x123, b"hello"))
    check(recv(b) == (0x123, b"hello"), "the filtered socket sees only 0x123")
    check(not select.select([b], [], [], 0.2)[0], "and nothing else")
    a.send(frame(0x3f0, b"\x00"))
    can_id, data = recv(admin)
    check(can_id == 0x3f1 and data == b"\x20" + UUID + b"\x01", "the node answers as unassigned Klipper", data)
    try:
        a.send(b"short")
        check(False, "a short write fails")
    except OSError as e:
        check(e.errno == errno.EINVAL, "EINVAL for a write that is not one frame", e)
    a.send(frame(0x3f0, b"\x02" + UUID))
    boards = Boards()
    boards.vb.wait(0, "katapult", 5000)
    a.send(frame(0x3f0, b"\x00"))
    can_id, data = recv(admin)
    check(data == b"\x20" + UUID + b"\x11", "after the reboot it answers as Katapult", data)
    boards.reset(0)
    boards.vb.wait(0, "app", 5000)
    for s in (a, b, admin):
        s.close()


def test_down_and_bus_off():
    boards = Boards()
    a = sock()
    for verb, back, code in (("can-down", "can-up", errno.ENETDOWN), ("can-bus-off", "can-bus-on", errno.ENOBUFS)):
        boards.request(verb, "can0")
        try:
            a.send(frame(0x3f0, b"\x00"))
            check(False, f"{verb}: write fails")
        except OSError as e:
            check(e.errno == code, f"{verb}: {errno.errorcode[code]}", e)
        finally:
            boards.request(back, "can0")
    a.send(frame(0x3f0, b"\x00"))
    a.close()


if __name__ == "__main__":
    harness.main([test_interface, test_loopback_filter_and_node, test_down_and_bus_off])
