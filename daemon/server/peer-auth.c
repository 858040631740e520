/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Who the peer of a connection is (its credentials) and what it may do. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer-auth.h"

int peer_cred_new(PeerCred **ret, pid_t pid, uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups)
{
        PeerCred *p;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->pid = pid;
        p->uid = uid;
        p->gid = gid;
        if (n_groups > 0) {
                p->groups = malloc(n_groups * sizeof(gid_t));
                if (!p->groups) {
                        free(p);
                        return -ENOMEM;
                }
                memcpy(p->groups, groups, n_groups * sizeof(gid_t));
                p->n_groups = n_groups;
        }
        *ret = p;
        return 0;
}

int peer_cred_new_from_socket(PeerCred **ret, int fd)
{
        _cleanup_free_ gid_t *groups = NULL;
        socklen_t len = sizeof(struct ucred), glen = 16 * sizeof(gid_t);
        struct ucred uc;
        size_t n = 0;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
                return -errno;
        if (len != sizeof(uc))
                return -EIO;

        /* SO_PEERGROUPS (Linux 4.13) says how much room it needs with ERANGE. */
        for (;;) {
                socklen_t l = glen;
                gid_t *g = realloc(groups, glen);

                if (!g)
                        return -ENOMEM;
                groups = g;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &l) >= 0) {
                        n = l / sizeof(gid_t);
                        break;
                }
                if (errno == ERANGE && l > glen) {
                        glen = l;
                        continue;
                }
                if (errno == ENOPROTOOPT)
                        break; /* old kernel: primary group only */
                return -errno;
        }

        return peer_cred_new(ret, uc.pid, uc.uid, uc.gid, groups, n);
}

PeerCred *peer_cred_free(PeerCred *p)
{
        if (!p)
                return NULL;
        free(p->groups);
        free(p);
        return NULL;
}

bool peer_cred_in_group(const PeerCred *p, gid_t gid)
{
        if (gid == (gid_t)-1)
                return false;
        if (p->gid == gid)
                return true;
        for (size_t i = 0; i < p->n_groups; i++)
                if (p->groups[i] == gid)
                        return true;
        return false;
}

const char *peer_cred_format(const PeerCred *p, char buf[static PEER_CRED_STRING_MAX])
{
        struct passwd pw, *res = NULL;
        char pwbuf[1024];

        if (getpwuid_r(p->uid, &pw, pwbuf, sizeof(pwbuf), &res) != 0)
                res = NULL;
        if (res)
                snprintf(buf, PEER_CRED_STRING_MAX, "uid=%u(%s) gid=%u pid=%d", (unsigned)p->uid,
                         res->pw_name, (unsigned)p->gid, (int)p->pid);
        else
                snprintf(buf, PEER_CRED_STRING_MAX, "uid=%u gid=%u pid=%d", (unsigned)p->uid,
                         (unsigned)p->gid, (int)p->pid);
        return buf;
}

int peer_auth_lookup_group(const char *name, gid_t *ret_gid)
{
        struct group gr, *res = NULL;
        char buf[4096];
        char *end;
        unsigned long v;
        int r;

        if (!name || !name[0])
                return -EINVAL;
        errno = 0;
        v = strtoul(name, &end, 10);
        if (name[0] >= '0' && name[0] <= '9' && *end == '\0') {
                if (errno != 0 || v >= (gid_t)-1)
                        return -ERANGE;
                *ret_gid = (gid_t)v;
                return 0;
        }
        r = getgrnam_r(name, &gr, buf, sizeof(buf), &res);
        if (r != 0)
                return -r;
        if (!res)
                return -ENOENT;
        *ret_gid = res->gr_gid;
        return 0;
}

bool peer_auth_may_mutate(const PeerCred *peer, gid_t flash_group)
{
        if (!peer)
                return false;
        if (peer->uid == 0 || peer->uid == geteuid())
                return true;
        return peer_cred_in_group(peer, flash_group);
}
