# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for the update-*.py tests: Klipper images whose embedded data
dictionary carries a chosen version and MCU (stdlib only)."""

import json
import os
import random
import zlib

from jobs_helpers import APP, RAM_TOP, check, flashctl


def dictionary(version, mcu, clock=180000000):
    d = {"app": "Klipper", "version": version, "build_versions": "gcc: test binutils: test",
         "config": {"MCU": mcu, "CLOCK_FREQ": clock}, "commands": {}, "responses": {}, "enumerations": {}}
    return zlib.compress(json.dumps(d).encode())


def klipper_image(version, mcu, size=16 * 1024, address=APP, ram_top=RAM_TOP, seed=7):
    """A plausible application for `address` (initial SP in RAM, Thumb reset
    vector inside) with the dictionary near the end."""
    rnd = random.Random(seed)
    body = bytearray(rnd.randbytes(size))
    body[0:4] = ram_top.to_bytes(4, "little")
    body[4:8] = (address + 0x201).to_bytes(4, "little")
    blob = dictionary(version, mcu)
    off = size - len(blob) - 64
    assert off > 64, "image too small for a dictionary"
    body[off:off + len(blob)] = blob
    return bytes(body)


# A fake Klipper tree: a Makefile honouring flashd's build contract
# (make -C TREE KCONFIG_CONFIG=FILE OUT=DIR/ -jN -> DIR/klipper.bin) and a
# script that "builds" an image whose dictionary carries `git describe` of
# the tree and CONFIG_MCU of the .config. CONFIG_FAKE_FAIL=y makes it fail
# like a compiler error would.
FAKE_MAKEFILE = """\
OUT ?= out/
KCONFIG_CONFIG ?= .config
export PYTHONDONTWRITEBYTECODE = 1
all:
\t@python3 scripts/fakebuild.py "$(KCONFIG_CONFIG)" "$(OUT)"
# stands in for the interactive menu: one choice made
menuconfig:
\t@echo 'CONFIG_FAKE_MENU=y' >> "$(KCONFIG_CONFIG)"
"""

FAKE_BUILD = r'''
import json, os, random, subprocess, sys, zlib
config, out = sys.argv[1], sys.argv[2]
values = {}
for line in open(config):
    line = line.strip()
    if line.startswith("CONFIG_") and "=" in line:
        k, v = line.split("=", 1)
        values[k] = v.strip('"')
print("  Creating symbolic link", out + "board")
print("  Compiling (fake) for", values.get("CONFIG_MCU"))
if values.get("CONFIG_FAKE_FAIL") == "y":
    print("src/fake.c:12:3: error: 'oops' undeclared (first use in this function)", file=sys.stderr)
    sys.exit(2)
version = subprocess.run(["git", "describe", "--always", "--tags", "--long", "--dirty"],
                         capture_output=True, text=True, check=True).stdout.strip()
d = {"app": "Klipper", "version": version, "build_versions": "gcc: fake binutils: fake",
     "config": {"MCU": values["CONFIG_MCU"], "CLOCK_FREQ": int(values.get("CONFIG_CLOCK_FREQ", "180000000"))},
     "commands": {}, "responses": {}, "enumerations": {}}
blob = zlib.compress(json.dumps(d).encode())
address = int(values.get("CONFIG_FLASH_APPLICATION_ADDRESS", "0x8008000"), 0)
size = 16 * 1024
body = bytearray(random.Random(version).randbytes(size))
if values["CONFIG_MCU"] == "rp2040":
    # boot2 (its CRC-32/MPEG-2 at 252), then the vector table at 0x100
    crc = 0xFFFFFFFF
    for b in body[0:252]:
        crc ^= b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    body[252:256] = crc.to_bytes(4, "little")
    body[256:260] = (0x20042000).to_bytes(4, "little")
    body[260:264] = (address + 0x1C1).to_bytes(4, "little")
else:
    body[0:4] = (0x20020000).to_bytes(4, "little")
    body[4:8] = (address + 0x201).to_bytes(4, "little")
off = size - len(blob) - 64
body[off:off + len(blob)] = blob
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "klipper.bin"), "wb") as f:
    f.write(body)
print("  Creating bin file", os.path.join(out, "klipper.bin"), "version", version)
'''

KCONFIG = 'CONFIG_MACH_STM32=y\nCONFIG_MCU="{mcu}"\nCONFIG_CLOCK_FREQ=180000000\nCONFIG_FLASH_APPLICATION_ADDRESS=0x8008000\n'


def git(tree, *args):
    import subprocess
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    return subprocess.run(["git", "-c", "safe.directory=*", "-C", tree, *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def fake_klipper_tree(base, owner="nobody"):
    """A git repository tagged v0.12.0 with the Makefile and script, owned by `owner`."""
    tree = os.path.join(base, "klipper")
    os.makedirs(os.path.join(tree, "scripts"))
    with open(os.path.join(tree, "Makefile"), "w") as f:
        f.write(FAKE_MAKEFILE)
    with open(os.path.join(tree, "scripts", "fakebuild.py"), "w") as f:
        f.write(FAKE_BUILD)
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", "fake klipper")
    git(tree, "tag", "v0.12.0")
    chown_tree(base, tree, owner)
    return tree


def chown_tree(base, tree, owner="nobody"):
    import pwd
    pw = pwd.getpwnam(owner)
    os.chmod(base, 0o755)
    for root, dirs, files in os.walk(tree):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)


def describe(tree):
    return git(tree, "describe", "--always", "--tags", "--long", "--dirty")


def new_commit(base, tree, owner="nobody"):
    with open(os.path.join(tree, "CHANGES"), "a") as f:
        f.write("change\n")
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", "change")
    chown_tree(base, tree, owner)
    return describe(tree)


def mcu_status(d, *args):
    """flashctl status --json (with `args` before it): the MCUs by name."""
    p = flashctl(d, *args, "--json", "status")
    check(p.returncode == 0, f"status exit {p.returncode}", p.stdout + p.stderr)
    return {m["name"]: m for m in json.loads(p.stdout)["mcus"]}
