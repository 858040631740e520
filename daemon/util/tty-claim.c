/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/macros.h"
#include "util/tty-claim.h"

#define TTY_CLAIMS_MAX 32

static pthread_mutex_t claims_lock = PTHREAD_MUTEX_INITIALIZER;
static char *claims[TTY_CLAIMS_MAX];

int tty_claim(const char *tty)
{
        int r = -EBUSY;

        pthread_mutex_lock(&claims_lock);
        for (size_t i = 0; i < TTY_CLAIMS_MAX; i++)
                if (!claims[i]) {
                        claims[i] = strdup(tty);
                        r = claims[i] ? 0 : -ENOMEM;
                        break;
                }
        pthread_mutex_unlock(&claims_lock);
        return r;
}

void tty_release(const char *tty)
{
        pthread_mutex_lock(&claims_lock);
        for (size_t i = 0; i < TTY_CLAIMS_MAX; i++)
                if (claims[i] && streq(claims[i], tty)) {
                        free(claims[i]);
                        claims[i] = NULL;
                        break;
                }
        pthread_mutex_unlock(&claims_lock);
}

bool tty_claimed(const char *tty)
{
        bool found = false;

        pthread_mutex_lock(&claims_lock);
        for (size_t i = 0; i < TTY_CLAIMS_MAX && !found; i++)
                found = claims[i] && streq(claims[i], tty);
        pthread_mutex_unlock(&claims_lock);
        return found;
}
