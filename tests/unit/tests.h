/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Minimal assertion helpers for table-driven unit tests. A failed check
 * prints where and what, and the test exits non-zero at the end.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tests_failed;

#define CHECK(expr)                                                                              \
        do {                                                                                     \
                if (!(expr)) {                                                                   \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr); \
                        tests_failed++;                                                          \
                }                                                                                \
        } while (0)

#define CHECK_INT(a, b)                                                                                     \
        do {                                                                                                \
                long long _a = (long long)(a), _b = (long long)(b);                                         \
                if (_a != _b) {                                                                             \
                        fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a, \
                                _a, #b, _b);                                                                \
                        tests_failed++;                                                                     \
                }                                                                                           \
        } while (0)

#define CHECK_STR(a, b)                                                                                   \
        do {                                                                                              \
                const char *_a = (a), *_b = (b);                                                          \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                                                  \
                        fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a, \
                                _a ? _a : "(null)", _b ? _b : "(null)");                                  \
                        tests_failed++;                                                                   \
                }                                                                                         \
        } while (0)

#define TESTS_EXIT()                                                           \
        do {                                                                   \
                if (tests_failed)                                              \
                        fprintf(stderr, "%d check(s) failed\n", tests_failed); \
                return tests_failed ? EXIT_FAILURE : EXIT_SUCCESS;             \
        } while (0)
