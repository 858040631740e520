/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <simavr/avr_uart.h>
#include <simavr/sim_avr.h>
#include <simavr/sim_hex.h>
#include <simavr/sim_irq.h>

#include "avr-sim.h"
#include "codec/stk500v2-proto.h"

#define INPUT_MAX  (64u * 1024u)
#define OUTPUT_MAX 4096u
/* cycles between throttle checks and output flushes: 0.25 ms at 16 MHz */
#define CHUNK_CYCLES 4000u

struct AvrSim {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t thread;
        bool thread_started;
        bool quit;

        AvrSimConfig cfg;
        AvrSimCallbacks cb;
        avr_t *avr;
        avr_irq_t *uart_in;
        bool xoff;

        AvrSimState state;
        bool reset_pending;
        bool halt_pending;
        /* wall clock and cycle count at the last reset, for throttling */
        uint64_t wall0_ns;
        uint64_t cycle0;

        uint8_t in[INPUT_MAX];
        size_t in_head, in_len;
        uint8_t out[OUTPUT_MAX];
        size_t out_len;

        Stk500v2Decoder v2;
        AvrSimStats stats;
        uint32_t flash_size; /* the chip's, even when the array is larger */
};

const char *avr_sim_state_to_string(AvrSimState s)
{
        switch (s) {
        case AVR_SIM_HALTED:
                return "halted";
        case AVR_SIM_BOOTLOADER:
                return "bootloader";
        case AVR_SIM_APP:
                return "app";
        case _AVR_SIM_STATE_MAX:
                break;
        }
        return NULL;
}

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* lock held */
static void feed_uart(AvrSim *s)
{
        while (!s->xoff && s->in_len > 0) {
                uint8_t c = s->in[s->in_head];
                s->in_head = (s->in_head + 1) % INPUT_MAX;
                s->in_len--;
                avr_raise_irq(s->uart_in, c);
        }
}

static void on_uart_out(struct avr_irq_t *irq, uint32_t value, void *param)
{
        AvrSim *s = param;
        if (s->out_len < OUTPUT_MAX)
                s->out[s->out_len++] = (uint8_t)value;
        s->stats.bytes_out++;
}

static void on_uart_xon(struct avr_irq_t *irq, uint32_t value, void *param)
{
        AvrSim *s = param;
        s->xoff = false;
        feed_uart(s);
}

static void on_uart_xoff(struct avr_irq_t *irq, uint32_t value, void *param)
{
        AvrSim *s = param;
        s->xoff = true;
}

static void quiet_logger(struct avr_t *avr, const int level, const char *format, va_list ap)
{
}

/* lock held */
static void core_reset(AvrSim *s)
{
        avr_reset(s->avr);
        s->avr->pc = s->cfg.boot_address;
        /* MCUSR (data 0x54 on these parts): an external reset, EXTRF;
         * optiboot starts the application at once after any other */
        s->avr->data[0x54] = 0x02;
        s->in_len = 0;
        s->in_head = 0;
        s->xoff = false;
        s->wall0_ns = now_ns();
        s->cycle0 = s->avr->cycle;
        stk500v2_decoder_init(&s->v2);
        s->stats.resets++;
}

static void flush_output(AvrSim *s, AvrSimState *notify_state, bool *notify)
{
        uint8_t out[OUTPUT_MAX];
        size_t n = s->out_len;

        if (n > 0)
                memcpy(out, s->out, n);
        s->out_len = 0;
        bool changed = *notify;
        AvrSimState st = *notify_state;
        *notify = false;
        pthread_mutex_unlock(&s->lock);
        if (n > 0 && s->cb.output)
                s->cb.output(s->cb.userdata, out, n);
        if (changed && s->cb.state_changed)
                s->cb.state_changed(s->cb.userdata, st);
        pthread_mutex_lock(&s->lock);
}

static void set_state(AvrSim *s, AvrSimState st, AvrSimState *notify_state, bool *notify)
{
        if (s->state == st)
                return;
        s->state = st;
        *notify_state = st;
        *notify = true;
}

static void *sim_thread(void *userdata)
{
        AvrSim *s = userdata;
        AvrSimState notify_state = AVR_SIM_HALTED;
        bool notify = false;

        pthread_mutex_lock(&s->lock);
        while (!s->quit) {
                if (s->halt_pending) {
                        s->halt_pending = false;
                        set_state(s, AVR_SIM_HALTED, &notify_state, &notify);
                }
                if (s->reset_pending) {
                        s->reset_pending = false;
                        core_reset(s);
                        set_state(s, AVR_SIM_BOOTLOADER, &notify_state, &notify);
                }
                if (s->state != AVR_SIM_BOOTLOADER) {
                        flush_output(s, &notify_state, &notify);
                        if (s->quit || s->reset_pending || s->halt_pending)
                                continue;
                        pthread_cond_wait(&s->cond, &s->lock);
                        continue;
                }

                uint64_t target = s->avr->cycle + CHUNK_CYCLES;
                int cs = cpu_Running;
                while (s->avr->cycle < target) {
                        feed_uart(s);
                        cs = avr_run(s->avr);
                        if (cs == cpu_Done || cs == cpu_Crashed)
                                break;
                        if (s->avr->pc < s->cfg.boot_address)
                                break;
                }
                if (cs == cpu_Done || cs == cpu_Crashed) {
                        /* a crashed bootloader: the watchdog would reset it */
                        core_reset(s);
                } else if (s->avr->pc < s->cfg.boot_address) {
                        uint16_t w0 = (uint16_t)(s->avr->flash[0] | s->avr->flash[1] << 8);
                        s->stats.app_starts++;
                        if (w0 == 0xffff)
                                /* erased flash executes up to the boot section */
                                core_reset(s);
                        else
                                set_state(s, AVR_SIM_APP, &notify_state, &notify);
                }
                flush_output(s, &notify_state, &notify);

                /* throttle: simulated time must not run ahead of the wall clock */
                uint64_t sim_ns = (uint64_t)((double)(s->avr->cycle - s->cycle0) * 1e9 /
                                             ((double)s->cfg.frequency * s->cfg.speed));
                uint64_t wall_ns = now_ns() - s->wall0_ns;
                if (sim_ns > wall_ns + 200000u) {
                        struct timespec ts;
                        uint64_t ahead = sim_ns - wall_ns;
                        pthread_mutex_unlock(&s->lock);
                        ts.tv_sec = (time_t)(ahead / 1000000000u);
                        ts.tv_nsec = (long)(ahead % 1000000000u);
                        nanosleep(&ts, NULL);
                        pthread_mutex_lock(&s->lock);
                }
        }
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

int avr_sim_new(AvrSim **ret, const AvrSimConfig *cfg, const AvrSimCallbacks *cb)
{
        AvrSim *s;
        ihex_chunk_p chunks = NULL;
        int n;
        uint32_t flags = 0;

        avr_global_logger_set(quiet_logger);
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        s->cfg = *cfg;
        if (s->cfg.speed <= 0)
                s->cfg.speed = 1.0;
        if (cb)
                s->cb = *cb;
        stk500v2_decoder_init(&s->v2);

        s->avr = avr_make_mcu_by_name(cfg->mcu);
        if (!s->avr) {
                avr_sim_free(s);
                return -ENODEV;
        }
        avr_init(s->avr);
        s->avr->log = LOG_NONE;
        s->flash_size = s->avr->flashend + 1;
        s->avr->frequency = cfg->frequency;

        n = read_ihex_chunks(cfg->bootloader_hex, &chunks);
        if (n <= 0) {
                avr_sim_free(s);
                return -ENOENT;
        }
        for (int i = 0; i < n; i++) {
                uint64_t end = (uint64_t)chunks[i].baseaddr + chunks[i].size;
                if (end > (uint64_t)s->avr->flashend + 1 && end <= 2 * ((uint64_t)s->avr->flashend + 1)) {
                        /* Debian's optiboot_atmega328.hex is 532 bytes: 20
                         * bytes past the end of a 32 KiB part. The emulated
                         * core gets a flash array large enough to run it;
                         * the host only sees the chip's own flash size
                         * (boards' databases, avr_sim_flash_size()). */
                        uint32_t size = 2 * (s->avr->flashend + 1);
                        uint8_t *f = realloc(s->avr->flash, size);
                        if (!f) {
                                free_ihex_chunks(chunks);
                                avr_sim_free(s);
                                return -ENOMEM;
                        }
                        memset(f + s->avr->flashend + 1, 0xff, size - (s->avr->flashend + 1));
                        s->avr->flash = f;
                        s->flash_size = s->avr->flashend + 1;
                        s->avr->flashend = size - 1;
                }
                if (end > (uint64_t)s->avr->flashend + 1) {
                        free_ihex_chunks(chunks);
                        avr_sim_free(s);
                        return -ERANGE;
                }
                memcpy(s->avr->flash + chunks[i].baseaddr, chunks[i].data, chunks[i].size);
        }
        free_ihex_chunks(chunks);
        s->avr->reset_pc = cfg->boot_address;
        s->avr->pc = cfg->boot_address;

        /* the UART must not sleep on idle polls, the bootloader polls it */
        avr_ioctl(s->avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
        flags &= ~(uint32_t)(AVR_UART_FLAG_POLL_SLEEP | AVR_UART_FLAG_STDIO);
        avr_ioctl(s->avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
        s->uart_in = avr_io_getirq(s->avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
        avr_irq_register_notify(avr_io_getirq(s->avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT),
                                on_uart_out, s);
        avr_irq_register_notify(avr_io_getirq(s->avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XON),
                                on_uart_xon, s);
        avr_irq_register_notify(avr_io_getirq(s->avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF),
                                on_uart_xoff, s);

        s->state = AVR_SIM_APP;
        if (pthread_create(&s->thread, NULL, sim_thread, s) != 0) {
                avr_sim_free(s);
                return -EAGAIN;
        }
        s->thread_started = true;
        *ret = s;
        return 0;
}

AvrSim *avr_sim_free(AvrSim *s)
{
        if (!s)
                return NULL;
        if (s->thread_started) {
                pthread_mutex_lock(&s->lock);
                s->quit = true;
                pthread_cond_broadcast(&s->cond);
                pthread_mutex_unlock(&s->lock);
                pthread_join(s->thread, NULL);
        }
        if (s->avr) {
                avr_terminate(s->avr);
                free(s->avr);
        }
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return NULL;
}

void avr_sim_input(AvrSim *s, const uint8_t *data, size_t len)
{
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < len; i++) {
                Stk500v2Message m;
                if (stk500v2_decoder_push(&s->v2, data[i], &m) > 0) {
                        s->stats.v2_messages++;
                        if (m.body[0] == STK500V2_CMD_PROGRAM_FLASH_ISP)
                                s->stats.v2_program_commands++;
                }
        }
        s->stats.bytes_in += len;
        /* the application ignores what it is sent here; a stopped chip too */
        if (s->state == AVR_SIM_BOOTLOADER) {
                for (size_t i = 0; i < len && s->in_len < INPUT_MAX; i++) {
                        s->in[(s->in_head + s->in_len) % INPUT_MAX] = data[i];
                        s->in_len++;
                }
        }
        pthread_mutex_unlock(&s->lock);
}

void avr_sim_reset(AvrSim *s)
{
        pthread_mutex_lock(&s->lock);
        s->reset_pending = true;
        s->halt_pending = false;
        /* the bytes for the old core are gone with it */
        s->in_len = 0;
        s->in_head = 0;
        /* so that input arriving right after the pulse is taken */
        s->state = AVR_SIM_BOOTLOADER;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

void avr_sim_halt(AvrSim *s)
{
        pthread_mutex_lock(&s->lock);
        s->halt_pending = true;
        s->reset_pending = false;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

AvrSimState avr_sim_get_state(AvrSim *s)
{
        pthread_mutex_lock(&s->lock);
        AvrSimState st = s->state;
        pthread_mutex_unlock(&s->lock);
        return st;
}

AvrSimStats avr_sim_get_stats(AvrSim *s)
{
        pthread_mutex_lock(&s->lock);
        AvrSimStats st = s->stats;
        pthread_mutex_unlock(&s->lock);
        return st;
}

uint32_t avr_sim_flash_size(AvrSim *s)
{
        return s->flash_size;
}

int avr_sim_read_flash(AvrSim *s, uint32_t address, void *buf, size_t len)
{
        if ((uint64_t)address + len > avr_sim_flash_size(s))
                return -ERANGE;
        pthread_mutex_lock(&s->lock);
        memcpy(buf, s->avr->flash + address, len);
        pthread_mutex_unlock(&s->lock);
        return 0;
}

int avr_sim_load_flash(AvrSim *s, uint32_t address, const void *data, size_t len)
{
        if ((uint64_t)address + len > avr_sim_flash_size(s))
                return -ERANGE;
        pthread_mutex_lock(&s->lock);
        memcpy(s->avr->flash + address, data, len);
        pthread_mutex_unlock(&s->lock);
        return 0;
}
