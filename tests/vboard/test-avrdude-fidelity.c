/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fidelity of the emulated Mega against a real client: avrdude 7.1
 * (`-c wiring -p m2560 -b 115200`, as Klipper's `make flash` runs it)
 * writes and verifies through the real Arduino bootloader running in
 * simavr (avr-sim.c), then reads back what our STK500v2 session wrote, and
 * must notice a mismatch. The board hangs off a plain pty here: umockdev
 * 0.17's emulated tty answers glibc's tcsetattr (which avrdude uses) with
 * ENOTTY. A termios change on the pty (avrdude opening the port) resets
 * the chip, as the rising DTR does on a real Mega.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "../unit/tests.h"
#include "avr-sim.h"
#include "util/macros.h"
#include "serial/avr-session.h"
#include "serial/serial-port.h"

#define AVRDUDE     "/usr/bin/avrdude"
#define BOOTLOADERS "/usr/share/arduino/hardware/arduino/avr/bootloaders/"

static AvrSim *sim;
static int master = -1;
static atomic_bool stop;
static char tmp[] = "/tmp/avr-fidelity-XXXXXX";

static void on_output(void *userdata, const uint8_t *data, size_t len)
{
        (void)!write(master, data, len);
}

static void *pump(void *userdata)
{
        uint8_t buf[1024];

        while (!atomic_load(&stop)) {
                struct pollfd p = { .fd = master, .events = POLLIN };
                if (poll(&p, 1, 100) <= 0)
                        continue;
                ssize_t n = read(master, buf, sizeof(buf));
                if (n <= 0)
                        continue;
                /* TIOCPKT: a status byte first */
                if (buf[0] == TIOCPKT_DATA)
                        avr_sim_input(sim, buf + 1, (size_t)n - 1);
                else if (buf[0] & TIOCPKT_IOCTL)
                        avr_sim_reset(sim);
        }
        return NULL;
}

static int sim_reset(void *userdata)
{
        avr_sim_reset(sim);
        return 0;
}

static void write_hex(const char *path, const uint8_t *data, size_t len)
{
        FILE *f = fopen(path, "we");
        if (!f)
                abort();
        for (size_t off = 0; off < len; off += 16) {
                size_t n = MIN((size_t)16, len - off);
                uint8_t sum = (uint8_t)(n + (off >> 8) + off);
                fprintf(f, ":%02zX%04zX00", n, off);
                for (size_t i = 0; i < n; i++) {
                        fprintf(f, "%02X", data[off + i]);
                        sum = (uint8_t)(sum + data[off + i]);
                }
                fprintf(f, "%02X\n", (uint8_t)-sum);
        }
        fprintf(f, ":00000001FF\n");
        fclose(f);
}

static int avrdude(const char *port, const char *op)
{
        pid_t pid = fork();
        int status;

        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                dup2(null, STDOUT_FILENO);
                execl(AVRDUDE, "avrdude", "-q", "-q", "-C", "/etc/avrdude.conf", "-c", "wiring", "-p",
                      "m2560", "-P", port, "-b", "115200", "-D", "-U", op, (char *)NULL);
                _exit(127);
        }
        if (pid < 0 || waitpid(pid, &status, 0) < 0)
                return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
        buf[0] = 0x0c;
        buf[1] = 0x94;
        for (size_t i = 2; i < len; i++)
                buf[i] = (uint8_t)((i * 97u + seed * 13u + (i >> 7)) ^ (seed << 3));
}

static bool flash_equals(const uint8_t *data, size_t len)
{
        uint8_t *buf = malloc(len);
        bool eq = avr_sim_read_flash(sim, 0, buf, len) == 0 && memcmp(buf, data, len) == 0;
        free(buf);
        return eq;
}

int main(void)
{
        static const AvrSimConfig cfg = {
                .mcu = "atmega2560",
                .frequency = 16000000,
                .bootloader_hex = BOOTLOADERS "stk500v2/stk500boot_v2_mega2560.hex",
                .boot_address = 0x3e000,
                .speed = 1.0,
        };
        static const AvrChip mega = {
                .mcu = "atmega2560",
                .signature = { 0x1e, 0x98, 0x01 },
                .flash_size = 256u * 1024u,
                .page_size = 256,
                .boot_size = 8192,
        };
        AvrSimCallbacks cb = { .output = on_output };
        uint8_t a[1500], b[2300];
        char port[64], hex_a[128], hex_b[128], op[256];
        pthread_t thread;
        struct termios t;
        int slave;

        if (access(AVRDUDE, X_OK) < 0 || access(cfg.bootloader_hex, R_OK) < 0) {
                fprintf(stderr, "avrdude or arduino-core-avr missing (scripts/deps)\n");
                return 77;
        }
        if (!mkdtemp(tmp))
                return EXIT_FAILURE;
        snprintf(hex_a, sizeof(hex_a), "%s/a.hex", tmp);
        snprintf(hex_b, sizeof(hex_b), "%s/b.hex", tmp);
        fill(a, sizeof(a), 1);
        fill(b, sizeof(b), 2);
        write_hex(hex_a, a, sizeof(a));
        write_hex(hex_b, b, sizeof(b));

        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
            ptsname_r(master, port, sizeof(port)) != 0)
                return EXIT_FAILURE;
        /* held open so the master never sees a hangup between clients;
         * EXTPROC + TIOCPKT report every termios change of a client */
        slave = open(port, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0 || tcgetattr(slave, &t) < 0)
                return EXIT_FAILURE;
        cfmakeraw(&t);
        t.c_lflag |= EXTPROC;
        tcsetattr(slave, TCSANOW, &t);
        ioctl(master, TIOCPKT, &(int){ 1 });

        CHECK_INT(avr_sim_new(&sim, &cfg, &cb), 0);
        if (!sim)
                return EXIT_FAILURE;
        pthread_create(&thread, NULL, pump, NULL);

        /* avrdude writes and verifies image A */
        snprintf(op, sizeof(op), "flash:w:%s:i", hex_a);
        CHECK_INT(avrdude(port, op), 0);
        CHECK(flash_equals(a, sizeof(a)));

        /* our session writes image B over the same bootloader */
        {
                _cleanup_(serial_port_freep) SerialPort *p = NULL;
                _cleanup_(avr_session_freep) AvrSession *s = NULL;
                AvrFlashOptions o = { .chip = mega, .reset = sim_reset };
                char *msg = NULL;
                CHECK_INT(serial_port_open(&p, port, 115200), 0);
                if (p) {
                        CHECK_INT(avr_session_new(&s, serial_port_get_transport(p), AVR_PROTOCOL_STK500V2),
                                  0);
                        _cleanup_(flash_image_freep) FlashImage *image = NULL;
                        CHECK_INT(flash_image_parse_bin(b, sizeof(b), 0, &image, NULL), 0);
                        CHECK_INT(avr_session_flash(s, image, &o, NULL, &msg), FLASH_RESULT_LEFT);
                        fprintf(stderr, "session: %s\n", msg);
                        free(msg);
                }
        }
        CHECK(flash_equals(b, sizeof(b)));

        /* avrdude reads back the same bytes, and sees A is gone */
        snprintf(op, sizeof(op), "flash:v:%s:i", hex_b);
        CHECK_INT(avrdude(port, op), 0);
        snprintf(op, sizeof(op), "flash:v:%s:i", hex_a);
        CHECK(avrdude(port, op) != 0);

        atomic_store(&stop, true);
        pthread_join(thread, NULL);
        sim = avr_sim_free(sim);
        close(slave);
        close(master);
        unlink(hex_a);
        unlink(hex_b);
        rmdir(tmp);
        TESTS_EXIT();
}
