/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The job model (states, phases, error codes, JSON round trip, log) and the
 * content-addressed image store. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs/image-store.h"
#include "jobs/job.h"
#include "util/macros.h"
#include "tests.h"

static void test_names(void)
{
        static const struct {
                JobState state;
                const char *name;
                bool final;
        } states[] = {
                { JOB_STATE_QUEUED, "queued", false },
                { JOB_STATE_WAITING_FOR_DEVICE, "waiting-for-device", false },
                { JOB_STATE_REBOOTING, "rebooting", false },
                { JOB_STATE_FLASHING, "flashing", false },
                { JOB_STATE_WAITING_FOR_APP, "waiting-for-app", false },
                { JOB_STATE_DONE, "done", true },
                { JOB_STATE_FAILED, "failed", true },
                { JOB_STATE_CANCELLED, "cancelled", true },
                { JOB_STATE_INTERRUPTED, "interrupted", false },
                { JOB_STATE_SUPERSEDED, "superseded", true },
        };
        static const struct {
                JobPhase phase;
                const char *name;
        } phases[] = {
                { JOB_PHASE_NONE, "none" },     { JOB_PHASE_READ_BACK, "read-back" },
                { JOB_PHASE_ERASE, "erase" },   { JOB_PHASE_WRITE, "write" },
                { JOB_PHASE_VERIFY, "verify" }, { JOB_PHASE_LEAVE, "leave" },
        };
        /* the published codes (proto/API.md): never renumbered */
        static const struct {
                JobError error;
                int code;
                const char *name;
                bool check;
        } errors[] = {
                { JOB_ERROR_TARGET_NOT_FOUND, 1, "target-not-found", false },
                { JOB_ERROR_TARGET_AMBIGUOUS, 2, "target-ambiguous", false },
                { JOB_ERROR_IMAGE_INVALID, 3, "image-invalid", false },
                { JOB_ERROR_IMAGE_TOO_LARGE, 4, "image-too-large", false },
                { JOB_ERROR_CHECK_FIT, 5, "check-fit", true },
                { JOB_ERROR_CHECK_VECTOR_TABLE, 6, "check-vector-table", true },
                { JOB_ERROR_CHECK_BOOTLOADER_REGION, 7, "check-bootloader-region", true },
                { JOB_ERROR_CHECK_MCU, 8, "check-mcu", true },
                { JOB_ERROR_TTY_BUSY, 9, "tty-busy", false },
                { JOB_ERROR_REBOOT_FAILED, 10, "reboot-failed", false },
                { JOB_ERROR_BOOTLOADER_TIMEOUT, 11, "bootloader-timeout", false },
                { JOB_ERROR_DEVICE_GONE, 12, "device-gone", false },
                { JOB_ERROR_FLASH_FAILED, 13, "flash-failed", false },
                { JOB_ERROR_VERIFY_FAILED, 14, "verify-failed", false },
                { JOB_ERROR_APP_TIMEOUT, 15, "app-timeout", false },
                { JOB_ERROR_STUCK_IN_BOOTLOADER, 16, "stuck-in-bootloader", false },
                { JOB_ERROR_INTERRUPTED, 17, "interrupted", false },
                { JOB_ERROR_UNSUPPORTED_DEVICE, 18, "unsupported-device", false },
                { JOB_ERROR_LAYOUT, 19, "layout", false },
                { JOB_ERROR_UNIT_CONTROL, 20, "unit-control", false },
                { JOB_ERROR_INTERNAL, 21, "internal", false },
        };

        CHECK_INT(ELEMENTSOF(states), _JOB_STATE_MAX);
        for (size_t i = 0; i < ELEMENTSOF(states); i++) {
                CHECK_STR(job_state_to_string(states[i].state), states[i].name);
                CHECK_INT(job_state_from_string(states[i].name), states[i].state);
                CHECK_INT(job_state_is_final(states[i].state), states[i].final);
        }
        CHECK(!job_state_to_string(_JOB_STATE_MAX));
        CHECK_INT(job_state_from_string("nope"), -EINVAL);

        CHECK_INT(ELEMENTSOF(phases), _JOB_PHASE_MAX);
        for (size_t i = 0; i < ELEMENTSOF(phases); i++) {
                CHECK_STR(job_phase_to_string(phases[i].phase), phases[i].name);
                CHECK_INT(job_phase_from_string(phases[i].name), phases[i].phase);
        }

        CHECK_INT(ELEMENTSOF(errors) + 1, _JOB_ERROR_MAX);
        for (size_t i = 0; i < ELEMENTSOF(errors); i++) {
                CHECK_INT(errors[i].error, errors[i].code);
                CHECK_STR(job_error_to_string(errors[i].error), errors[i].name);
                CHECK_INT(job_error_from_string(errors[i].name), errors[i].error);
                CHECK_INT(job_error_is_check(errors[i].error), errors[i].check);
                /* every failure says what to do */
                CHECK(job_error_advice(errors[i].error) && strlen(job_error_advice(errors[i].error)) > 20);
        }
        CHECK_STR(job_error_to_string(JOB_ERROR_NONE), "none");
        CHECK(!job_error_to_string(_JOB_ERROR_MAX));
}

static void test_state_machine(void)
{
        _cleanup_(job_freep) Job *j = NULL;

        CHECK_INT(job_new(&j, 7), 0);
        CHECK_INT(j->state, JOB_STATE_QUEUED);
        CHECK(j->verify);
        job_enter_state(j, JOB_STATE_REBOOTING);
        job_enter_state(j, JOB_STATE_FLASHING);
        j->phase = JOB_PHASE_WRITE;
        CHECK(j->was_flashing);
        CHECK_INT(j->finished, 0);
        /* leaving flashing resets the phase */
        job_enter_state(j, JOB_STATE_WAITING_FOR_APP);
        CHECK_INT(j->phase, JOB_PHASE_NONE);
        CHECK(!j->was_flashing);
        job_fail(j, JOB_ERROR_APP_TIMEOUT, "no board after %d s", 5);
        CHECK_INT(j->state, JOB_STATE_FAILED);
        CHECK_INT(j->error, JOB_ERROR_APP_TIMEOUT);
        CHECK_STR(j->error_message, "no board after 5 s");
        CHECK(j->finished > 0);
        /* old -> new is in the log */
        CHECK(j->n_log >= 4);
        CHECK(strstr(j->log[0], "queued -> rebooting"));
        CHECK(strstr(j->log[j->n_log - 1], "waiting-for-app -> failed"));
}

static void test_log_bounded(void)
{
        _cleanup_(job_freep) Job *j = NULL;

        CHECK_INT(job_new(&j, 1), 0);
        for (int i = 0; i < JOB_LOG_MAX + 50; i++)
                job_log(j, "line %d", i);
        CHECK_INT(j->n_log, JOB_LOG_MAX);
        CHECK(strstr(j->log[0], "line 50"));
        CHECK(strstr(j->log[JOB_LOG_MAX - 1], "line 249"));
}

static void test_json_round_trip(void)
{
        _cleanup_(job_freep) Job *j = NULL, *k = NULL;
        json_t *o, *api;

        CHECK_INT(job_new(&j, 42), 0);
        job_set_string(&j->target, "octopus-pro");
        job_set_string(&j->port, "1-1.3");
        job_set_string(&j->board, "octopus-pro");
        job_set_string(&j->variant, "f429");
        job_set_string(&j->mcu, "stm32f429xx");
        job_set_string(&j->source, "rule-3");
        job_set_string(&j->image.format, "bin");
        job_set_string(&j->requested_by.name, "flashctl");
        memset(j->image.sha256, 'a', 64);
        j->image.size = 30124;
        j->image.address = 0x08008000;
        j->force = 1u << IMAGE_CHECK_VECTOR_TABLE;
        j->mass_erase = true;
        j->verify = false;
        j->requested_by.uid = 1000;
        j->requested_by.pid = 4242;
        j->attempts = 2;
        job_enter_state(j, JOB_STATE_FLASHING);

        o = job_to_state_json(j);
        CHECK(o);
        CHECK_INT(job_from_state_json(o, &k), 0);
        json_decref(o);
        CHECK_INT(k->id, 42);
        CHECK_INT(k->state, JOB_STATE_FLASHING);
        CHECK(k->was_flashing);
        CHECK_STR(k->port, "1-1.3");
        CHECK_STR(k->variant, "f429");
        CHECK_STR(k->source, "rule-3");
        CHECK_STR(k->image.sha256, j->image.sha256);
        CHECK_INT(k->image.address, 0x08008000);
        CHECK(!k->image.has_address);
        CHECK_INT(k->force, 1u << IMAGE_CHECK_VECTOR_TABLE);
        CHECK(k->mass_erase);
        CHECK(!k->verify);
        CHECK_INT(k->requested_by.uid, 1000);
        CHECK_STR(k->requested_by.name, "flashctl");
        CHECK_INT(k->attempts, 2);
        CHECK_INT(k->n_log, j->n_log);

        /* the API object: no private fields, log only on request, error null */
        api = job_to_json(j, false);
        CHECK(api && !json_object_get(api, "log") && !json_object_get(api, "was_flashing"));
        CHECK(json_is_null(json_object_get(api, "error")));
        CHECK_STR(json_string_value(json_array_get(json_object_get(api, "force"), 0)), "vector-table");
        json_decref(api);

        /* interrupted, then superseded: when, and by which job, survive the state file */
        {
                _cleanup_(job_freep) Job *m = NULL;
                job_enter_state(k, JOB_STATE_INTERRUPTED);
                CHECK(k->interrupted_at > 0 && k->was_flashing);
                o = job_to_state_json(k);
                CHECK_INT(job_from_state_json(o, &m), 0);
                json_decref(o);
                CHECK(m->interrupted_at == k->interrupted_at);
                m->superseded_by = 43;
                job_enter_state(m, JOB_STATE_SUPERSEDED);
                CHECK(job_state_is_final(m->state) && m->interrupted_at == 0 && m->finished > 0);
                api = job_to_json(m, false);
                CHECK_STR(json_string_value(json_object_get(api, "state")), "superseded");
                CHECK_INT(json_integer_value(json_object_get(api, "superseded_by")), 43);
                json_decref(api);
                api = job_to_json(k, false);
                CHECK(json_is_null(json_object_get(api, "superseded_by")));
                json_decref(api);
        }

        job_fail(k, JOB_ERROR_CHECK_MCU, "wrong MCU");
        api = job_to_json(k, true);
        CHECK_INT(json_integer_value(json_object_get(json_object_get(api, "error"), "code")), 8);
        CHECK_STR(json_string_value(json_object_get(json_object_get(api, "error"), "name")), "check-mcu");
        CHECK(json_array_size(json_object_get(api, "log")) == k->n_log);
        json_decref(api);

        /* malformed input is refused, not guessed */
        static const char *const bad[] = {
                "{}",
                "{\"id\": 1, \"state\": \"queued\"}",
                "{\"id\": 1, \"state\": \"bogus\", \"image\": {\"sha256\": \""
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}",
                "{\"id\": 1, \"state\": \"queued\", \"image\": {\"sha256\": \"short\"}}",
                "[]",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                Job *x = NULL;
                json_t *b = json_loads(bad[i], 0, NULL);
                CHECK_INT(job_from_state_json(b, &x), -EBADMSG);
                CHECK(!x);
                json_decref(b);
        }
}

static void test_image_store(void)
{
        char dir[] = "/tmp/test-job-store-XXXXXX", sub[64], hex[65], again[65], path[160];
        _cleanup_(image_store_freep) ImageStore *s = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        size_t size = 0;
        int fds[2];

        CHECK(mkdtemp(dir));
        snprintf(sub, sizeof(sub), "%s/images", dir);
        CHECK_INT(image_store_new(&s, sub), 0);

        /* FIPS 180-2 test vector */
        CHECK_INT(image_store_hash("abc", 3, hex), 0);
        CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

        CHECK_INT(image_store_put(s, "abc", 3, again), 0);
        CHECK_STR(again, hex);
        CHECK(image_store_has(s, hex));
        CHECK_INT(image_store_put(s, "abc", 3, again), 0); /* idempotent */
        CHECK_INT(image_store_get(s, hex, &data, &size), 0);
        CHECK_INT(size, 3);
        CHECK(memcmp(data, "abc", 3) == 0);

        /* a file that no longer matches its name is refused */
        snprintf(path, sizeof(path), "%s/%s", sub, hex);
        {
                int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
                CHECK(fd >= 0 && write(fd, "abd", 3) == 3);
                close(fd);
        }
        free(data);
        data = NULL;
        CHECK_INT(image_store_get(s, hex, &data, &size), -EBADMSG);
        CHECK_INT(image_store_remove(s, hex), 0);
        CHECK(!image_store_has(s, hex));
        CHECK_INT(image_store_get(s, hex, &data, &size), -ENOENT);
        CHECK_INT(image_store_get(s, "../../etc/passwd", &data, &size), -EINVAL);
        CHECK(!image_store_has(s, "ABC"));

        /* reading a pipe, with a limit */
        CHECK_INT(pipe2(fds, O_CLOEXEC), 0);
        CHECK(write(fds[1], "0123456789", 10) == 10);
        close(fds[1]);
        CHECK_INT(image_read_fd(fds[0], 5, &data, &size), -EFBIG);
        close(fds[0]);
        CHECK_INT(pipe2(fds, O_CLOEXEC), 0);
        CHECK(write(fds[1], "0123456789", 10) == 10);
        close(fds[1]);
        CHECK_INT(image_read_fd(fds[0], 10, &data, &size), 0);
        CHECK_INT(size, 10);
        close(fds[0]);

        /* a regular file is read from its start, whatever its offset */
        {
                char file[160];
                int fd;
                snprintf(file, sizeof(file), "%s/f", dir);
                fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
                CHECK(fd >= 0 && write(fd, "abcdef", 6) == 6); /* offset now at the end */
                free(data);
                data = NULL;
                CHECK_INT(image_read_fd(fd, 100, &data, &size), 0);
                CHECK_INT(size, 6);
                CHECK(data && memcmp(data, "abcdef", 6) == 0);
                CHECK_INT(image_read_fd(fd, 5, &data, &size), -EFBIG);
                close(fd);
                unlink(file);
        }
        rmdir(sub);
        rmdir(dir);
}

/* A session's phase reaches the job as the phase of the same name. */
static void test_flash_phases(void)
{
        static const struct {
                FlashPhase flash;
                const char *name;
        } table[] = {
                { FLASH_PHASE_READ_BACK, "read-back" }, { FLASH_PHASE_ERASE, "erase" },
                { FLASH_PHASE_WRITE, "write" },         { FLASH_PHASE_VERIFY, "verify" },
                { FLASH_PHASE_LEAVE, "leave" },
        };

        CHECK_INT(ELEMENTSOF(table), _FLASH_PHASE_MAX);
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                CHECK_STR(flash_phase_to_string(table[i].flash), table[i].name);
                CHECK_STR(job_phase_to_string(job_phase_from_flash(table[i].flash)), table[i].name);
        }
        CHECK(!flash_phase_to_string(_FLASH_PHASE_MAX));
        CHECK_INT(job_phase_from_flash(_FLASH_PHASE_INVALID), JOB_PHASE_NONE);
}

int main(void)
{
        test_names();
        test_state_machine();
        test_log_bounded();
        test_json_round_trip();
        test_image_store();
        test_flash_phases();
        TESTS_EXIT();
}
