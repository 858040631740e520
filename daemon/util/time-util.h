/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Times as microseconds in a uint64_t (usec_t), on a named clock:
 * CLOCK_MONOTONIC for durations and timers, CLOCK_REALTIME for what is
 * shown to people or persisted (seconds since the epoch in the API).
 */

#include <stdint.h>
#include <time.h>

typedef uint64_t usec_t;

#define USEC_INFINITY ((usec_t)UINT64_MAX)
#define USEC_PER_SEC  ((usec_t)1000000ULL)
#define USEC_PER_MSEC ((usec_t)1000ULL)
#define NSEC_PER_USEC ((uint64_t)1000ULL)

static inline usec_t timespec_load(const struct timespec *ts)
{
        return (usec_t)ts->tv_sec * USEC_PER_SEC + (usec_t)ts->tv_nsec / NSEC_PER_USEC;
}

static inline usec_t now_usec(clockid_t clock)
{
        struct timespec ts;

        clock_gettime(clock, &ts);
        return timespec_load(&ts);
}

/* The API's seconds (a JSON number) and back; negative or NaN seconds are 0.
 * Rounded to the microsecond, so a time read back is the time written. */
static inline double usec_to_sec(usec_t u)
{
        return (double)u / (double)USEC_PER_SEC;
}

static inline usec_t sec_to_usec(double s)
{
        return s > 0 ? (usec_t)(s * (double)USEC_PER_SEC + 0.5) : 0;
}
