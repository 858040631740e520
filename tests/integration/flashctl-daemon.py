#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""flashctl against the real flashd, without boards: status, boards, info on
a board from the database, errors, watch's lifetime, and the daemon going
away. Boards themselves are covered by flashctl-vboard.py."""
import base64
import json
import os
import signal
import subprocess
import time

import harness


def run(d, *args, env=None):
    e = dict(os.environ, NO_COLOR="1")
    e.update(env or {})
    return subprocess.run([harness.flashctl_binary(), "--socket", d.socket_path, *args], env=e,
                          capture_output=True, text=True, timeout=20)


def test_status():
    with harness.Flashd() as d:
        info = d.client().call("server.info")
        p = run(d, "status")
        assert p.returncode == 0, p
        assert f"Version: {info['version']}" in p.stdout, p.stdout
        assert "API version:" in p.stdout and "Boards:" in p.stdout, p.stdout
        p = run(d, "--json", "status")
        assert p.returncode == 0, p
        got = json.loads(p.stdout)
        assert got["version"] == info["version"] and got["boards"] == info["boards"], got


def test_list_empty():
    with harness.Flashd() as d:
        p = run(d, "list")
        assert p.returncode == 0 and p.stdout.strip() == "0 devices listed.", p
        p = run(d, "list", "--json")
        assert p.returncode == 0 and json.loads(p.stdout) == [], p
        p = run(d, "--no-legend", "list")
        assert p.returncode == 0 and p.stdout == "", p
        # a mistyped mode is an error, not "0 devices listed."
        p = run(d, "list", "--mode=bogus")
        assert p.returncode == 2 and "unknown mode 'bogus'" in p.stderr and p.stdout == "", p
        assert run(d, "list", "--mode", "dfu").returncode == 0


def test_boards_and_board_info():
    with harness.Flashd() as d:
        c = d.client()
        boards = c.call("board.list")
        p = run(d, "--json", "boards")
        assert p.returncode == 0 and json.loads(p.stdout) == boards, p
        p = run(d, "boards")
        assert p.returncode == 0, p
        names = [line.split()[0] for line in p.stdout.splitlines()[1:] if line.strip()][:len(boards)]
        assert sorted(names) == sorted(b["name"] for b in boards), (names, p.stdout)
        assert f"{len(boards)} boards known." in p.stdout

        p = run(d, "info", "octopus-pro")
        assert p.returncode == 0, p
        for want in ("octopus-pro", "not connected", "Variant f429 (stm32f429xx)",
                     "Layout: 4x16K 1x64K 7x128K", "Application at: 0x08008000", "Flash: 1 MiB at 0x08000000",
                     "set BOOT0"):
            assert want in p.stdout, (want, p.stdout)
        p = run(d, "--json", "info", "octopus-pro")
        assert p.returncode == 0 and json.loads(p.stdout) == c.call("board.info", {"board": "octopus-pro"}), p


def test_unknown_name():
    with harness.Flashd() as d:
        p = run(d, "info", "no-such-thing")
        assert p.returncode == 1, p
        assert "no-such-thing" in p.stderr and "flashctl boards" in p.stderr, p.stderr
        assert p.stdout == "", p.stdout


def test_watch_lifetime():
    with harness.Flashd() as d:
        c = d.client()
        before = c.call("server.info")["clients"]
        w = subprocess.Popen([harness.flashctl_binary(), "--socket", d.socket_path, "--json", "watch"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # watch is connected and identified (so it gets notifications)
            harness.wait_for(lambda: c.call("server.info")["clients"] == before + 1, what="watch connected")
            w.send_signal(signal.SIGINT)
            assert w.wait(10) == 0, w.stderr.read()
            assert w.stdout.read() == ""
        finally:
            if w.poll() is None:
                w.kill()

        # the daemon going away ends watch with 4 and a message
        w = subprocess.Popen([harness.flashctl_binary(), "--socket", d.socket_path, "watch"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            harness.wait_for(lambda: c.call("server.info")["clients"] == before + 1, what="watch connected")
            d.stop()
            assert w.wait(10) == 4
            assert "closed the connection" in w.stderr.read()
        finally:
            if w.poll() is None:
                w.kill()


def complete(words, socket_path=None):
    """What client/flashctl.bash-completion offers for the last word of `words`."""
    script = os.path.join(harness.source_root(), "client", "flashctl.bash-completion")
    bindir = os.path.dirname(os.path.abspath(harness.flashctl_binary()))
    line = " ".join(words)
    prog = (f"source /usr/share/bash-completion/bash_completion; source {script}; "
            f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
            f"COMP_LINE={line!r}; COMP_POINT={len(line)}; _flashctl; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", ""))
    if socket_path:
        env["FLASHD_SOCKET"] = socket_path
    p = subprocess.run(["bash", "-c", prog], capture_output=True, text=True, env=env, timeout=20)
    assert p.returncode == 0, p
    return sorted(x for x in p.stdout.split("\n") if x)


def test_bash_completion():
    # every command of `flashctl --help`, read independently here
    help_text = subprocess.run([harness.flashctl_binary(), "--help"], capture_output=True, text=True).stdout
    section = help_text.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    commands = sorted(line.split()[0] for line in section.splitlines())
    assert {"boards", "help", "info", "list", "status", "watch"} <= set(commands), commands
    assert complete(["flashctl", ""]) == commands
    assert complete(["flashctl", "wa"]) == ["watch"]
    assert "--socket" in complete(["flashctl", "--"]) and "--mode" not in complete(["flashctl", "--"])
    assert "--mode" in complete(["flashctl", "list", "--"])
    assert complete(["flashctl", "list", "--mode", "d"]) == ["dfu"]
    assert complete(["flashctl", "help", "in"]) == ["info"]
    assert complete(["flashctl", "help", "info", ""]) == []
    assert complete(["flashctl", "info", "--"]) == sorted(
        ["--help", "--version", "--socket", "--json", "--timeout", "--no-legend"])
    # no daemon: nothing to offer, quickly
    start = time.monotonic()
    assert complete(["flashctl", "--socket", "/nonexistent/sock", "info", ""]) == []
    assert time.monotonic() - start < 5
    # rule: its subcommands, then its options (from its "Match:" and "Action:" sections)
    assert complete(["flashctl", "rule", ""]) == ["add", "disable", "enable", "list", "remove"]
    rule_opts = complete(["flashctl", "rule", "add", "--"])
    assert {"--image", "--board", "--port", "--once", "--max-retries", "--name"} <= set(rule_opts), rule_opts
    assert complete(["flashctl", "rule", "add", "--mode", "b"]) == ["bootloader"]
    with harness.Flashd() as d:
        c = d.client()
        names = sorted(b["name"] for b in c.call("board.list"))
        assert "octopus-pro" in names
        sock = d.socket_path
        # no board connected: `info` and `flash` still offer the database's boards
        assert complete(["flashctl", "info", ""], socket_path=sock) == names
        assert complete(["flashctl", "flash", "octo"], socket_path=sock) == [n for n in names if n.startswith("octo")]
        assert complete(["flashctl", "rule", "add", "--board", ""], socket_path=sock) == names
        image = base64.b64encode(b"\x00\x00\x02\x20\x01\x82\x00\x08" + bytes(1016)).decode()
        rule = c.call("rule.add", {"match": {"board": "octopus-pro"}, "image": {"data": image}})["rule"]
        assert complete(["flashctl", "rule", "remove", ""], socket_path=sock) == [rule["id"]]
        assert complete(["flashctl", "rule", "enable", rule["id"], ""], socket_path=sock) == []


def test_no_daemon():
    d = harness.Flashd().start()
    path = d.socket_path
    d.stop()
    try:
        start = time.monotonic()
        p = subprocess.run([harness.flashctl_binary(), "list"], env=dict(os.environ, FLASHD_SOCKET=path),
                           capture_output=True, text=True, timeout=20)
        assert p.returncode == 3, p
        assert f"cannot connect to {path}: No such file or directory — is flashd running? " \
               "(systemctl start flashd.socket)" in p.stderr, p.stderr
        assert time.monotonic() - start < 5
    finally:
        d.cleanup()


def test_image_data_base64():
    """job.flash decodes image.data strictly (RFC 4648, padded, no white
    space); a valid image goes on to the target lookup."""
    with harness.Flashd() as d:
        c = d.client()
        for bad in ("YWJ", "YW=j", "Y===", "YWJj\n\n\n\n", " YWJjZA=", "YWJj*A==", "YQ==YQ=="):
            try:
                c.call("job.flash", {"target": "no-such-board", "image": {"data": bad}})
                raise AssertionError(f"{bad!r} accepted")
            except harness.RpcError as e:
                assert e.message == "image.data is not valid base64", (bad, e)
        for data in (b"a", b"ab", b"abc", bytes(range(256)) * 3):
            try:
                c.call("job.flash", {"target": "no-such-board", "image": {"data": base64.b64encode(data).decode()}})
                raise AssertionError("no board, yet accepted")
            except harness.RpcError as e:
                assert "base64" not in e.message, (data, e)


if __name__ == "__main__":
    harness.main([test_status, test_list_empty, test_boards_and_board_info, test_unknown_name,
                  test_watch_lifetime, test_bash_completion, test_no_daemon, test_image_data_base64])
