/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "codec/can-proto.h"
#include "jobs/job-flow-can.h"
#include "util/macros.h"
#include "tests.h"

static void test_uuid_text(void)
{
        static const struct {
                const char *in;
                int r;
                const char *out;
        } cases[] = {
                { "0123456789ab", 0, "0123456789ab" },
                { "0x0123456789AB", 0, "0123456789ab" },
                { "FFFFFFFFFFFF", 0, "ffffffffffff" },
                { "0123456789a", -EINVAL, NULL },
                { "0123456789abc", -EINVAL, NULL },
                { "0123456789ag", -EINVAL, NULL },
                { "", -EINVAL, NULL },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                CanUuid u;
                char buf[13];
                CHECK_INT(can_uuid_parse(cases[i].in, &u), cases[i].r);
                if (cases[i].r == 0)
                        CHECK_STR(can_uuid_format(&u, buf), cases[i].out);
        }
}

static void test_usb_serial(void)
{
        /* expected values from a separate implementation of the algorithm
         * (fasthash64, seed 0xA16231A7, low byte first) */
        static const struct {
                const char *serial;
                int r;
                const char *uuid;
        } cases[] = {
                { "240033000F51333136363530", 0, "b833c06d9066" },
                { "0123456789ABCDEF01234567", 0, "38c9bdae9652" },
                { "abcd", 0, "81232f7cdf4a" },
                { "abc", -EINVAL, NULL },
                { "zz", -EINVAL, NULL },
                { "", -EINVAL, NULL },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                CanUuid u;
                char buf[13];
                CHECK_INT(can_uuid_from_usb_serial(cases[i].serial, &u), cases[i].r);
                if (cases[i].r == 0)
                        CHECK_STR(can_uuid_format(&u, buf), cases[i].uuid);
        }
        CHECK(can_fasthash64("", 0, 0) == 0);
        CHECK(can_fasthash64("\x24\x00\x33\x00\x0f\x51\x33\x31\x36\x36\x35\x30", 12, CAN_UUID_SEED) ==
              UINT64_C(0x137066906dc033b8));
}

static void test_admin(void)
{
        CanUuid u = { { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab } }, got;
        uint8_t d[8];
        CanAdminCmd c;
        CanApp app;

        CHECK_INT(can_admin_encode_query(d), 1);
        CHECK_INT(d[0], 0x00);
        CHECK_INT(can_admin_decode(d, 1, &c), 0);
        CHECK_INT(c.cmd, CAN_ADMIN_QUERY_UNASSIGNED);

        CHECK_INT(can_admin_encode_reboot(d, &u), 7);
        CHECK(memcmp(d, "\x02\x01\x23\x45\x67\x89\xab", 7) == 0);
        CHECK_INT(can_admin_decode(d, 7, &c), 0);
        CHECK(can_uuid_equal(&c.uuid, &u));
        CHECK_INT(can_admin_decode(d, 6, &c), -EBADMSG);

        CHECK_INT(can_admin_encode_set_nodeid(d, CAN_APP_KATAPULT, &u, 128), 8);
        CHECK(memcmp(d, "\x11\x01\x23\x45\x67\x89\xab\x80", 8) == 0);
        CHECK_INT(can_admin_decode(d, 8, &c), 0);
        CHECK_INT(c.app, CAN_APP_KATAPULT);
        CHECK_INT(c.node_id, 128);
        CHECK_INT(can_admin_encode_set_nodeid(d, CAN_APP_KLIPPER, &u, 129), 8);
        CHECK_INT(d[0], 0x01);
        CHECK_INT(can_admin_decode(d, 7, &c), -EBADMSG);

        CHECK_INT(can_admin_encode_clear(d), 1);
        CHECK_INT(d[0], 0x12);
        d[0] = 0x7f;
        CHECK_INT(can_admin_decode(d, 1, &c), -EBADMSG);
        CHECK_INT(can_admin_decode(d, 0, &c), -EBADMSG);

        static const struct {
                CanApp app;
                uint8_t byte;
        } answers[] = { { CAN_APP_KLIPPER, 0x01 }, { CAN_APP_KATAPULT, 0x11 } };
        for (size_t i = 0; i < ELEMENTSOF(answers); i++) {
                CHECK_INT(can_admin_encode_query_answer(d, &u, answers[i].app), 8);
                CHECK_INT(d[0], 0x20);
                CHECK_INT(d[7], answers[i].byte);
                CHECK_INT(can_admin_decode_answer(d, 8, &got, &app), 0);
                CHECK_INT(app, answers[i].app);
                CHECK(can_uuid_equal(&got, &u));
        }
        CHECK_INT(can_admin_decode_answer(d, 7, &got, &app), 0);
        CHECK_INT(app, CAN_APP_UNKNOWN);
        CHECK_INT(can_admin_decode_answer(d, 6, &got, &app), -EBADMSG);
        d[0] = 0x21;
        CHECK_INT(can_admin_decode_answer(d, 8, &got, &app), -EBADMSG);
        CHECK_STR(can_app_to_string(CAN_APP_KATAPULT), "katapult");
}

static void test_frames(void)
{
        static const struct {
                size_t size, count, last;
        } cases[] = {
                { 0, 0, 0 },  { 1, 1, 1 },  { 8, 1, 8 },   { 9, 2, 1 },
                { 16, 2, 8 }, { 72, 9, 8 }, { 76, 10, 4 },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                size_t total = 0;
                CHECK_INT(can_frames_count(cases[i].size), cases[i].count);
                for (size_t k = 0; k < cases[i].count; k++)
                        total += can_frame_length(cases[i].size, k);
                CHECK_INT(total, cases[i].size);
                if (cases[i].count)
                        CHECK_INT(can_frame_length(cases[i].size, cases[i].count - 1), cases[i].last);
                CHECK_INT(can_frame_length(cases[i].size, cases[i].count), 0);
        }
        CHECK_INT(can_node_rx_id(128), 0x200);
        CHECK_INT(can_node_tx_id(128), 0x201);
}

static void test_target(void)
{
        static const struct {
                const char *target;
                int r;
                const char *iface, *uuid;
        } cases[] = {
                { "can0:0123456789ab", 0, "can0", "0123456789ab" },
                { "can1:0123456789AB", 0, "can1", "0123456789ab" },
                { "my-can.1:ffffffffffff", 0, "my-can.1", "ffffffffffff" },
                { "can0:0123456789a", -EINVAL, NULL, NULL },
                { ":0123456789ab", -EINVAL, NULL, NULL },
                { "averyveryverylongname:0123456789ab", -EINVAL, NULL, NULL },
                { "/dev/ttyACM0", -EINVAL, NULL, NULL },
                { "1-1.3", -EINVAL, NULL, NULL },
                { "octopus", -EINVAL, NULL, NULL },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char iface[16], u[13];
                CanUuid uuid;
                CHECK_INT(job_can_target_parse(cases[i].target, iface, &uuid), cases[i].r);
                if (cases[i].r == 0) {
                        CHECK_STR(iface, cases[i].iface);
                        CHECK_STR(can_uuid_format(&uuid, u), cases[i].uuid);
                }
        }
}

static void test_printer_cfg(void)
{
        static const char cfg[] = "[mcu]\n"
                                  "serial: /dev/serial/by-id/usb-Klipper_stm32f446xx_1-if00\n"
                                  "\n"
                                  "[mcu EBBCan]\n"
                                  "canbus_uuid: 0123456789AB   # the toolhead\n"
                                  "[extruder]\n"
                                  "canbus_uuid: ffffffffffff\n"
                                  "[mcu sb2209]\n"
                                  "canbus_interface = can1\n"
                                  "canbus_uuid = a8fdf9774fb5\n"
                                  "[mcu broken]\n"
                                  "canbus_uuid: 12345\n"
                                  "[mcu]\n"
                                  "canbus_uuid: 00000000000f";
        KlipperCanMcu m[4];
        char u[13];

        CHECK_INT(klipper_cfg_can_mcus(cfg, strlen(cfg), m, 4), 3);
        CHECK_STR(m[0].name, "EBBCan");
        CHECK_STR(m[0].iface, "can0");
        CHECK_STR(can_uuid_format(&m[0].uuid, u), "0123456789ab");
        CHECK_STR(m[1].name, "sb2209");
        CHECK_STR(m[1].iface, "can1");
        CHECK_STR(can_uuid_format(&m[1].uuid, u), "a8fdf9774fb5");
        CHECK_STR(m[2].name, "mcu");
        CHECK_STR(can_uuid_format(&m[2].uuid, u), "00000000000f");
        CHECK_INT(klipper_cfg_can_mcus(cfg, strlen(cfg), m, 1), 1);
        CHECK_INT(klipper_cfg_can_mcus("", 0, m, 4), 0);
}

int main(void)
{
        test_printer_cfg();
        test_target();
        test_uuid_text();
        test_usb_serial();
        test_admin();
        test_frames();
        TESTS_EXIT();
}
