/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A flash job: what to flash where, its state machine, progress and log.
 * Owned by the main loop (JobQueue); workers only send messages about it.
 * The JSON form is both the socket API's job object (proto/API.md, "Jobs")
 * and the persisted form in the state dir.
 */

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec/image-check.h"
#include "jobs/job-error.h"
#include "util/flash-callbacks.h"
#include "util/list.h"
#include "util/macros.h"
#include "util/time-util.h"

typedef enum JobState {
        JOB_STATE_QUEUED,
        JOB_STATE_WAITING_FOR_DEVICE,
        JOB_STATE_REBOOTING,
        JOB_STATE_FLASHING,
        JOB_STATE_WAITING_FOR_APP,
        JOB_STATE_DONE,
        JOB_STATE_FAILED,
        JOB_STATE_CANCELLED,
        /* flashd stopped while the job ran; retried when the board shows up in
         * its bootloader, or failed (retry_interrupted = no) */
        JOB_STATE_INTERRUPTED,
        /* final: a job accepted later for the same board took over before
         * this one ran again (superseded_by names it) */
        JOB_STATE_SUPERSEDED,
        _JOB_STATE_MAX,
        _JOB_STATE_INVALID = -EINVAL,
} JobState;

/* NONE, then the sessions' own phases in their order (job_phase_from_flash()). */
typedef enum JobPhase {
        JOB_PHASE_NONE,
        JOB_PHASE_READ_BACK = 1 + FLASH_PHASE_READ_BACK, /* reading the flash to skip sectors that
                                                          * already hold the image */
        JOB_PHASE_ERASE = 1 + FLASH_PHASE_ERASE,
        JOB_PHASE_WRITE = 1 + FLASH_PHASE_WRITE,
        JOB_PHASE_VERIFY = 1 + FLASH_PHASE_VERIFY,
        JOB_PHASE_LEAVE = 1 + FLASH_PHASE_LEAVE,
        _JOB_PHASE_MAX,
        _JOB_PHASE_INVALID = -EINVAL,
} JobPhase;

static inline JobPhase job_phase_from_flash(FlashPhase p)
{
        return p >= 0 && p < _FLASH_PHASE_MAX ? (JobPhase)(1 + p) : JOB_PHASE_NONE;
}

#define JOB_LOG_MAX 200

typedef struct JobImage {
        char sha256[65];       /* hex; the key in the image store */
        uint64_t size;         /* bytes of the stored file */
        uint64_t payload_size; /* bytes of flash it covers: the job's total */
        char *format;          /* "bin", "hex", "dfu" */
        uint32_t address;      /* where the image starts (resolved at submission) */
        bool has_address;      /* the client gave the address explicitly (may write a bootloader) */
        char *name;            /* the file name the client gave, or NULL */
} JobImage;

/* What the flash did, kept after it ended (the progress counters are the
 * current phase's). */
typedef struct JobTotals {
        bool valid;
        uint64_t sectors_written;   /* erased or blank sectors written */
        uint64_t sectors_unchanged; /* skipped: they held the image already */
        uint64_t bytes_written;
        uint64_t bytes_verified;
} JobTotals;

typedef struct JobRequester {
        uid_t uid;
        pid_t pid;
        char *name; /* client_name from identify, or the process name */
} JobRequester;

/* What a change asks of the job's owner (job_mark_dirty()). */
typedef enum JobDirty {
        JOB_DIRTY_SAVE = 1u << 0,   /* persist it (jobs.json) */
        JOB_DIRTY_NOTIFY = 1u << 1, /* tell the clients (notify_job_update) */
        JOB_DIRTY_ALL = JOB_DIRTY_SAVE | JOB_DIRTY_NOTIFY,
} JobDirty;

typedef struct Job Job;
typedef void (*JobOnDirty)(Job *j, JobDirty what, void *userdata);

struct Job {
        uint64_t id;
        JobState state;
        JobPhase phase;

        char *target; /* as the client spelled it */
        char *port;   /* USB port path: the board's identity across re-enumeration */
        char *board;  /* board name from the DB, or NULL */
        /* other boards the device could be that the flash treats alike
         * ("octopus" for an F429 taken as "octopus-pro"), "|"-separated */
        char *board_alternatives;
        char *variant;
        char *mcu;
        char *device; /* current device path (tty or usb node); the new one when done */
        char *mode;   /* mode the board was last seen in */

        JobImage image;
        bool verify;
        bool mass_erase;
        unsigned force; /* 1 << ImageCheck: checks overridden by the user */

        uint64_t bytes_done;
        uint64_t bytes_total;
        double rate; /* bytes/s of the current phase */
        char *message;
        JobTotals totals;
        /* while waiting for the board: since when, for how long at most, and
         * the board's hints once the job asks for a hand ("set BOOT0 and
         * press reset"), "; "-separated */
        usec_t wait_started; /* CLOCK_REALTIME */
        usec_t wait_timeout_usec;
        char *wait_hint;

        JobError error;
        char *error_message;

        usec_t created, started, finished; /* CLOCK_REALTIME, 0 = not yet; seconds in JSON */
        char **log;
        size_t n_log;

        char *source; /* "manual" or a rule id */
        JobRequester requested_by;
        unsigned attempts;      /* how many times the flow was started */
        bool was_flashing;      /* persisted: a restart during flashing means interrupted */
        usec_t interrupted_at;  /* persisted: when it became interrupted (CLOCK_REALTIME; its expiry
                                 * counts from here) */
        uint64_t superseded_by; /* the newer job for the same board, 0 = none */

        /* The owner's bookkeeping, never persisted. */
        JobOnDirty on_dirty;
        void *on_dirty_userdata;
        bool unnotified;         /* changed since the last notification */
        JobState notified_state; /* what the last notification said */
        JobPhase notified_phase;
        json_t *unsent;                /* the job at each state or phase it left before its
                                        * notification went out, oldest first (or NULL) */
        bool in_dirty_list, notifying; /* held by the owner's dirty list / being notified */
        bool pruned;                   /* dropped from the history, freed once notified */
        LIST_FIELDS(Job, dirty);
};

const char *job_state_to_string(JobState s);
JobState job_state_from_string(const char *s);
const char *job_phase_to_string(JobPhase p);
JobPhase job_phase_from_string(const char *s);

/* done, failed, cancelled, superseded */
bool job_state_is_final(JobState s);

int job_new(Job **ret, uint64_t id);
Job *job_free(Job *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(Job *, job_free);

/* Append a log line ("12:00:01 text"); the oldest lines go beyond JOB_LOG_MAX. */
void job_log(Job *j, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* The only way a job's state changes: logs old -> new (daemon log and job
 * log) and marks the job dirty (saved and notified at the end of the loop
 * turn, by its owner). */
void job_enter_state(Job *j, JobState s);
/* Set the phase. The owner decides when a phase is announced (with its
 * total); a state change before that keeps the phase's own notification. */
void job_enter_phase(Job *j, JobPhase p);
/* Something else changed that the owner must save and/or announce. */
void job_mark_dirty(Job *j, JobDirty what);
/* The owner sent the job's notification: take the objects of the states it
 * passed through meanwhile (a JSON array, or NULL), oldest first. */
json_t *job_take_notification(Job *j);
/* The log holds this line (the time stamp aside). */
bool job_log_has(const Job *j, const char *text);
/* Enter failed with an error code and a specific message. */
void job_fail(Job *j, JobError e, const char *format, ...) __attribute__((format(printf, 3, 4)));
int job_set_string(char **field, const char *value);

/* The API object; with_log = false leaves "log" out (for frequent updates). */
json_t *job_to_json(const Job *j, bool with_log);
/* The persisted form (job_to_json plus private fields); and back. */
json_t *job_to_state_json(const Job *j);
int job_from_state_json(json_t *o, Job **ret);
