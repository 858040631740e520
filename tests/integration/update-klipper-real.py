#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Optional: `flashctl update` with a real Klipper tree and a real
compiler, onto a virtual Octopus Pro (STM32F446, 32 KiB bootloader):

    FLASHD_TEST_KLIPPER_TREE=/path/to/klipper \\
    vboard --board octopus-pro-f446 --mode app

The test copies the tree's files into a fresh git repository owned by
`nobody` (tagged, so git describe gives a version as Klipper's build
does), completes a small STM32F446 .config with Klipper's own
olddefconfig, stores it as a profile, and runs `flashctl update mcu`: the
real make builds klipper.bin, flashd checks its dictionary (MCU and host
version), flashes it, and the virtual board answers identify with the
dictionary of the image it now holds, so `flashctl status` shows the MCU
current. Skipped (77) without the variable, git, make or
arm-none-eabi-gcc (gcc-arm-none-eabi and libnewlib-arm-none-eabi).
"""
import json
import os
import shutil
import subprocess

import harness
from jobs_helpers import check, flashctl, tmpdir
from update_helpers import chown_tree, describe, git

SCALE = float(os.environ.get("FLASHD_TEST_TIMEOUT_SCALE", "1"))
CONFIG = "reboot_wait_sec = 1\nbootloader_timeout_sec = 20\napp_timeout_sec = 20\n"
KCONFIG = ("CONFIG_MACH_STM32=y\nCONFIG_MACH_STM32F446=y\nCONFIG_STM32_FLASH_START_8000=y\n"
           "CONFIG_STM32_CLOCK_REF_12M=y\nCONFIG_STM32_USB_PA11_PA12=y\n")


def copy_tree(src, base):
    """The tree's tracked files (git archive) in a repository of its own."""
    tree = os.path.join(base, "klipper")
    os.makedirs(tree)
    archive = subprocess.run(["git", "-c", "safe.directory=*", "-C", src, "archive", "HEAD"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", "klipper")
    git(tree, "tag", "v0.13.0")
    chown_tree(base, tree)
    return tree


def test_real_klipper_build():
    src = os.environ.get("FLASHD_TEST_KLIPPER_TREE")
    if not src:
        raise harness.Skip("FLASHD_TEST_KLIPPER_TREE names no Klipper tree")
    if shutil.which("git") is None or shutil.which("make") is None:
        raise harness.Skip("needs git and make")
    if shutil.which("arm-none-eabi-gcc") is None:  # optional: scripts/deps leaves it out (large)
        raise harness.Skip("needs arm-none-eabi-gcc (gcc-arm-none-eabi, libnewlib-arm-none-eabi)")
    # a work tree or a bare repository (git archive reads either)
    if subprocess.run(["git", "-c", "safe.directory=*", "-C", src, "cat-file", "-e", "HEAD:src/Kconfig"],
                      capture_output=True).returncode != 0:
        raise harness.Skip(f"{src} is no Klipper git tree")
    base = tmpdir()
    tree = copy_tree(src, base)
    host = describe(tree)
    kconfig = os.path.join(base, "octopus.config")
    with open(kconfig, "w") as f:
        f.write(KCONFIG)
    # Klipper's own defaults for everything else (CONFIG_MCU among them)
    p = subprocess.run(["make", "-C", tree, f"KCONFIG_CONFIG={kconfig}", "olddefconfig"], capture_output=True,
                       text=True, timeout=120)
    check(p.returncode == 0, "olddefconfig", p.stdout + p.stderr)
    with open(kconfig) as f:
        text = f.read()
    check('CONFIG_MCU="stm32f446xx"' in text and "CONFIG_FLASH_APPLICATION_ADDRESS=0x8008000" in text,
          "an STM32F446 .config with a 32 KiB bootloader", text)
    cfg = os.path.join(base, "printer.cfg")
    config = CONFIG + f"\n[klipper]\npath = {tree}\nprinter_config = {cfg}\n"
    with harness.Flashd(config=config) as d:
        devs = harness.wait_for(lambda: (lambda x: x if "1-1.1" in x and x["1-1.1"].get("by_id") else None)(
            harness.devices_by_port(d.client())), timeout=20 * SCALE, what="the Octopus Pro")
        with open(cfg, "w") as f:
            f.write(f"[mcu]\nserial: {devs['1-1.1']['by_id']}\n")
        p = flashctl(d, "profile", "add", "octopus", "--board", "octopus-pro", "--kconfig", kconfig)
        check(p.returncode == 0, "profile add", p.stdout + p.stderr)
        p = flashctl(d, "--json", "update", "mcu", timeout=1200 * SCALE)
        check(p.returncode == 0, f"update exit {p.returncode}", p.stdout + p.stderr)
        step = json.loads(p.stdout)["steps"][0]
        check(step["result"] == "flashed" and step["new_version"] == host and step["current"],
              "built by Klipper's make, flashed, and running the host version", step)
        s = {m["name"]: m for m in json.loads(flashctl(d, "--json", "status").stdout)["mcus"]}
        check(s["mcu"]["state"] == "current" and s["mcu"]["mcu"] == "stm32f446xx" and
              s["mcu"]["running_source"] == "identify", "status: current, from the board's own dictionary", s)


if __name__ == "__main__":
    harness.main([test_real_klipper_build])
