# SPDX-License-Identifier: LGPL-2.1-or-later
"""A fake Klipper tree owned by `nobody` (flashd runs git describe as the
tree's owner), for update-status.py and update-moonraker.py."""
import os
import pwd
import subprocess


def git(tree, *args):
    return subprocess.run(["git", "-c", "safe.directory=*", "-C", tree, *args], check=True, capture_output=True,
                          text=True, env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
                                              GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")).stdout.strip()


def fake_tree(base):
    tree = os.path.join(base, "klipper")
    os.makedirs(tree)
    with open(os.path.join(tree, "README"), "w") as f:
        f.write("fake klipper\n")
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", "one")
    git(tree, "tag", "v0.12.0")
    return tree


def give_to_nobody(base, tree):
    nobody = pwd.getpwnam("nobody")
    os.chmod(base, 0o755)
    for root, dirs, files in os.walk(tree):
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), nobody.pw_uid, nobody.pw_gid)


def describe(tree):
    return git(tree, "describe", "--always", "--tags", "--long", "--dirty")
