/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The rules and what flashd knows about the boards it flashed, as kept in
 * <state dir>/rules.json (written atomically with util/json-file, so a
 * crash leaves the old or the new file, never half of one):
 *
 *   {"version": 1, "next_id": 4, "rules": [rule objects],
 *    "boards": [{"port": "1-1.3", "serials": ["3562...", "001C..."],
 *                "sha256": "...", "time": ..., "job": 7, "source": "rule-2"}]}
 *
 * "boards" remembers, per board identity (USB port path plus the USB serial
 * numbers seen on it during the job: the bootloader's and the
 * application's differ), the image flashd last flashed onto it
 * successfully. That is what keeps a rule from flashing a board that
 * already holds its image, across re-enumeration and restarts. No event
 * loop and no logging here.
 */

#include <stdbool.h>
#include <stdint.h>

#include "rules/rule.h"

/* Boards remembered at most; the oldest are forgotten first. */
#define RULE_SET_BOARDS_MAX 256u

typedef struct BoardImage {
        char *port;
        char **serials; /* NULL-terminated; empty when the board has none */
        char sha256[65];
        usec_t time; /* CLOCK_REALTIME */
        uint64_t job;
        char *source; /* "manual" or a rule id */
} BoardImage;

typedef struct RuleSet {
        Rule **rules; /* by id, oldest first */
        size_t n_rules;
        uint64_t next_id;
        BoardImage *boards; /* oldest first */
        size_t n_boards;
} RuleSet;

int rule_set_new(RuleSet **ret);
RuleSet *rule_set_free(RuleSet *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(RuleSet *, rule_set_free);

/* Read `path` into a new set. A missing file is an empty set; a file that
 * is not valid JSON or not our shape is -EBADMSG with *ret_error (malloc'd)
 * saying why. Malformed single rules or boards are skipped (*ret_skipped
 * counts them, may be NULL). */
int rule_set_load(RuleSet **ret, const char *path, size_t *ret_skipped, char **ret_error);
int rule_set_save(const RuleSet *s, const char *path);

/* A fresh id ("rule-<n>"), malloc'd. */
int rule_set_next_id(RuleSet *s, char **ret);
/* Takes ownership of r (on success). */
int rule_set_add(RuleSet *s, Rule *r);
Rule *rule_set_find(const RuleSet *s, const char *id);
/* Takes the rule out of the set and returns it (NULL when absent). */
Rule *rule_set_take(RuleSet *s, const char *id);
/* How many rules use the image. */
size_t rule_set_image_users(const RuleSet *s, const char *sha256);

/* The image flashd last flashed onto the board on `port` with USB serial
 * `serial` (NULL: the board has none; then the port alone decides), or NULL. */
const BoardImage *rule_set_board_image(const RuleSet *s, const char *port, const char *serial);
/* Remember that the board (port + every serial seen on it, NULL-terminated
 * or NULL) holds `sha256` now; replaces what was known about that board. */
int rule_set_remember(RuleSet *s, const char *port, char *const *serials, const char *sha256, usec_t time,
                      uint64_t job, const char *source);
/* Forget the board (its flash content is unknown now: a flash that failed
 * midway). Returns whether something was forgotten. */
bool rule_set_forget(RuleSet *s, const char *port, char *const *serials);
