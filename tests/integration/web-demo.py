#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""`scripts/demo --web BUILD_DIR` (an absolute path, as here): prints the panel's URL; in Chromium that page lists
the demo's virtual boards (an Octopus Pro running Klipper on 1-1.1, an SKR
Mini E3 V3 in DFU on 1-1.2) through the Moonraker stand-in and flashd; the
images it names are there; SIGTERM stops it all and removes its files."""
import os
import re
import select
import signal
import socket
import subprocess
import time

import harness
from browser_helpers import SCALE, Browser, artifacts_dir, require_browser
from jobs_helpers import check


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_web():
    require_browser()
    port = free_port()
    # no apt-get from a test: scripts/deps has run before the tests
    env = dict(os.environ, FLASHD_DEMO_PORT=str(port), FLASHD_DEMO_NO_DEPS="1")
    for k in ("LD_PRELOAD", "UMOCKDEV_DIR", "VBOARD_CONTROL"):
        env.pop(k, None)
    demo = subprocess.Popen([os.path.join(harness.source_root(), "scripts", "demo"), "--web", harness.build_root()],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = b""
    try:
        deadline = time.monotonic() + 120 * SCALE
        while b"Ctrl-C stops the demo" not in out:
            if time.monotonic() > deadline or demo.poll() is not None:
                raise AssertionError(f"no URL from scripts/demo --web: {out.decode(errors='replace')}")
            if select.select([demo.stdout], [], [], 0.5)[0]:
                out += os.read(demo.stdout.fileno(), 65536)
        text = out.decode()
        url = re.search(r"flashd web panel:\s+(\S+)", text).group(1)
        check(url == f"http://127.0.0.1:{port}/", "the URL on the chosen port", url)
        images = re.findall(r"(/tmp/flashd-demo-web-\w+/\S+\.bin)", text)
        check(len(images) == 3 and all(os.path.getsize(p) > 0 for p in images), "the images it names exist", images)
        tmp = os.path.dirname(images[0])
        with Browser() as b:
            b.open(url)
            b.wait("document.getElementById('conn').dataset.state === 'ready'", timeout=60, what="flashd connected")
            b.wait("[...document.querySelectorAll('.board .port')].map(e => e.textContent).join(' ') === '1-1.1 1-1.2'",
                   timeout=60, what="the demo's two boards")
            b.wait("document.querySelectorAll('.board .layout-bar').length === 2", what="both layouts")
            b.screenshot(os.path.join(artifacts_dir(), "demo.png"))
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(30 * SCALE)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
            raise AssertionError("scripts/demo --web did not stop on SIGTERM")
    check(not os.path.exists(tmp), "the demo removed its files", tmp)


if __name__ == "__main__":
    harness.main([test_demo_web])
