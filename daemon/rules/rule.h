/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A rule: "when a board like this shows up, flash this image" (proto/API.md,
 * "Rules"). The model only: what a rule matches, what it does, its status,
 * and its JSON forms (the API object, the persisted form, the params of
 * rule.add). No I/O and no logging; the RuleService (rule-service.h) runs
 * the rules on the main loop and the RuleSet (rule-store.h) persists them.
 */

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "inventory/inventory.h"
#include "util/macros.h"
#include "util/time-util.h"

typedef enum RuleMode {
        RULE_MODE_BOOTLOADER,  /* ROM DFU or Katapult: the board waits to be flashed */
        RULE_MODE_APPLICATION, /* Klipper runs: the job reboots it first (opt-in only) */
        _RULE_MODE_MAX,
        _RULE_MODE_INVALID = -EINVAL,
} RuleMode;

typedef enum RuleRepeat {
        RULE_REPEAT_ONCE,   /* one board; the rule disables itself after flashing it */
        RULE_REPEAT_ALWAYS, /* every matching board that does not hold the image yet */
        _RULE_REPEAT_MAX,
        _RULE_REPEAT_INVALID = -EINVAL,
} RuleRepeat;

/* Defaults of rule.add */
#define RULE_MAX_RETRIES_DEFAULT      3u
#define RULE_MAX_RETRIES_MAX          20u
#define RULE_RETRY_DELAY_DEFAULT      2.0  /* seconds before the first retry; doubled for each next */
#define RULE_RETRY_DELAY_MAX          60.0 /* upper bound of the (doubled) delay */
#define RULE_RETRY_DELAY_DEFAULT_USEC ((usec_t)(RULE_RETRY_DELAY_DEFAULT * USEC_PER_SEC))
#define RULE_RETRY_DELAY_MAX_USEC     ((usec_t)(RULE_RETRY_DELAY_MAX * USEC_PER_SEC))

typedef struct RuleMatch {
        char *board;  /* board database name; also matches a board that could be it (candidates) */
        char *mcu;    /* "stm32f446xx" (case-insensitive) */
        char *port;   /* port path or fnmatch(3) pattern ("1-1.3", "1-1.*") */
        char *serial; /* USB serial number or fnmatch(3) pattern */
        bool has_usb_id;
        uint16_t vid, pid;
        RuleMode mode;
} RuleMatch;

typedef struct RuleAction {
        char sha256[65]; /* the image in the job image store */
        uint64_t size;
        char *format;     /* "bin", "hex", "dfu" or NULL: detected */
        char *image_name; /* the client's file name, for people; may be NULL */
        uint32_t address;
        bool has_address;
        bool verify;
        bool mass_erase;
        unsigned force; /* 1 << ImageCheck */
        RuleRepeat repeat;
        unsigned max_retries;
        usec_t retry_delay_usec; /* "retry_delay_sec" in JSON */
} RuleAction;

/* Something that happened to a rule on a board (last fired, skipped, error). */
typedef struct RuleEvent {
        usec_t time; /* CLOCK_REALTIME (seconds since the epoch in JSON); 0 = never */
        char *port;
        uint64_t job; /* 0: none */
        char *message;
} RuleEvent;

typedef struct Rule {
        char *id;   /* "rule-3": the job source of the jobs it makes */
        char *name; /* a label for people, or NULL */
        bool enabled;
        RuleMatch match;
        RuleAction action;
        usec_t created; /* CLOCK_REALTIME */
        uid_t created_uid;
        char *created_by; /* client or process name */

        /* status, persisted with the rule */
        unsigned n_fired;   /* jobs submitted, retries included */
        unsigned n_flashed; /* jobs done */
        unsigned n_failed;  /* boards given up on after the last retry, or refused */
        unsigned n_skipped; /* boards that already held the image */
        RuleEvent last_fired, last_skipped, last_error;
        char *disabled_reason; /* why the rule disabled itself ("once"), or NULL */
} Rule;

const char *rule_mode_to_string(RuleMode m);
RuleMode rule_mode_from_string(const char *s);
const char *rule_repeat_to_string(RuleRepeat r);
RuleRepeat rule_repeat_from_string(const char *s);
/* Whether a device in mode `m` is in the mode a rule asks for. */
bool rule_mode_covers(RuleMode rule, DeviceMode m);

int rule_new(Rule **ret, const char *id);
Rule *rule_free(Rule *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Rule *, rule_free);

void rule_match_clear(RuleMatch *m);
void rule_event_clear(RuleEvent *e);
/* Replace an event (strings copied; NULL allowed). */
int rule_event_set(RuleEvent *e, usec_t time, const char *port, uint64_t job, const char *message);

/* What matching sees of a device: a plain copy of the inventory's view. */
typedef struct RuleCandidate {
        const char *board;
        const char *mcu;
} RuleCandidate;

typedef struct RuleDevice {
        const char *port;
        DeviceMode mode;
        const char *board; /* identified board, or NULL */
        const char *mcu;   /* known MCU, or NULL */
        const RuleCandidate *candidates;
        size_t n_candidates;
        const char *serial;
        uint16_t vid, pid;
} RuleDevice;

/* Fill `d` from an inventory entry; `cands` must have room for
 * e->n_candidates entries and outlive `d`. */
void rule_device_from_entry(const InventoryEntry *e, RuleCandidate *cands, RuleDevice *d);

/* Whether every criterion of `m` holds for `d` (criteria left NULL match
 * anything; the mode always counts). */
bool rule_match_device(const RuleMatch *m, const RuleDevice *d);

/*
 * Parse the "match" object of rule.add ({"board", "mcu", "port", "mode",
 * "usb_serial", "usb_id"}, all optional, mode defaults to "bootloader").
 * Unknown keys and malformed values are refused: -EINVAL with a malloc'd
 * sentence in *ret_error. A match with no criterion but the mode is
 * refused too (it would flash every board that shows up).
 */
int rule_match_from_json(json_t *o, RuleMatch *ret, char **ret_error);
json_t *rule_match_to_json(const RuleMatch *m);

/* The API object (proto/API.md, "Rule object") without "pending" (the
 * service adds what is in flight). */
json_t *rule_to_json(const Rule *r);
/* The persisted form, and back (-EBADMSG for a malformed object). */
json_t *rule_to_state_json(const Rule *r);
int rule_from_state_json(json_t *o, Rule **ret);

/* "force" as check names, and back from a JSON array (-EINVAL: unknown name,
 * *ret_bad names it). */
json_t *rule_force_to_json(unsigned force);
int rule_force_from_json(json_t *a, unsigned *ret, const char **ret_bad);

/* Delay before retry number `attempt` (1 = the first retry). */
usec_t rule_retry_delay(const Rule *r, unsigned attempt);
