/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <math.h>
#include <string.h>

#include "util/macros.h"
#include "timing.h"

static const char *const timing_mode_table[_TIMING_MODE_MAX] = {
        [TIMING_FAST] = "fast",
        [TIMING_REAL] = "real",
};

const char *timing_mode_to_string(TimingMode m)
{
        if (m < 0 || m >= _TIMING_MODE_MAX)
                return NULL;
        return timing_mode_table[m];
}

TimingMode timing_mode_from_string(const char *s)
{
        for (int i = 0; i < _TIMING_MODE_MAX; i++)
                if (s && streq(s, timing_mode_table[i]))
                        return i;
        return _TIMING_MODE_INVALID;
}

/* In fast mode every flash operation takes this long: long enough that a
 * GETSTATUS sent without honouring bwPollTimeout still sees dfuDNBUSY, short
 * enough for tests. */
#define FAST_BUSY_US 1000ULL

static uint64_t scaled(const Timing *t, double us)
{
        double v = us * (t->scale > 0 ? t->scale : 1.0);
        return v < 1 ? 1 : (uint64_t)llround(v);
}

uint64_t timing_sector_erase_us(const Timing *t, uint32_t sector_size)
{
        if (t->mode == TIMING_FAST)
                return FAST_BUSY_US;
        /* STM32F4 datasheets (DS9405 F446, DS9484 F429, "Flash memory
         * programming", x32 parallelism) tERASE typical: 16 KiB 250 ms,
         * 64 KiB 550 ms, 128 KiB 1 s (RM0090 3.5.3 uses the same sectors).
         * Small pages (STM32G0B1 DS13560 tERASE 2 KiB page: 22 ms typ). Sizes
         * in between are interpolated linearly between those points. */
        static const struct {
                uint32_t size;
                double us;
        } points[] = {
                { 2048, 22000 },
                { 16384, 250000 },
                { 65536, 550000 },
                { 131072, 1000000 },
        };
        if (sector_size <= points[0].size)
                return scaled(t, points[0].us);
        for (size_t i = 1; i < ELEMENTSOF(points); i++)
                if (sector_size <= points[i].size) {
                        double f = (double)(sector_size - points[i - 1].size) /
                                   (double)(points[i].size - points[i - 1].size);
                        return scaled(t, points[i - 1].us + f * (points[i].us - points[i - 1].us));
                }
        /* Larger sectors: proportional to the 128 KiB figure. */
        return scaled(t, 1000000.0 * sector_size / 131072.0);
}

uint64_t timing_mass_erase_us(const Timing *t, uint32_t flash_size)
{
        if (t->mode == TIMING_FAST)
                return FAST_BUSY_US;
        /* DS9484 (STM32F429) tME mass erase typ 8 s per MiB bank at x32. */
        return scaled(t, 8000000.0 * flash_size / 1048576.0);
}

uint64_t timing_program_us(const Timing *t, uint32_t bytes)
{
        if (t->mode == TIMING_FAST)
                return FAST_BUSY_US;
        /* DS9405 / DS9484: tPROG word programming time typ 16 us (x32). */
        return scaled(t, 16.0 * DIV_ROUND_UP(bytes, 4));
}

uint64_t timing_control_transfer_us(const Timing *t)
{
        if (t->mode == TIMING_FAST)
                return 0;
        /* USB 2.0 full speed: a control transfer with data stage spans at
         * least one 1 ms frame (USB 2.0 spec 5.5.4; setup, data and status
         * stages of the ROM's full-speed device land in successive frames
         * in practice). */
        return scaled(t, 1000);
}

uint64_t timing_reenumerate_us(const Timing *t)
{
        if (t->mode == TIMING_FAST)
                return 20000;
        /* Reset, USB attach debounce (USB 2.0 7.1.7.3: 100 ms) and the host's
         * enumeration plus udev processing: about 1 s on a Raspberry Pi as
         * seen with `udevadm monitor` during `make flash`. */
        return scaled(t, 1000000);
}

uint64_t timing_manifest_us(const Timing *t)
{
        if (t->mode == TIMING_FAST)
                return 5000;
        /* The ROM answers GETSTATUS (dfuMANIFEST) and then resets the core;
         * the device drops off the bus a few ms later (AN3156 "Leave DFU"). */
        return scaled(t, 10000);
}

uint32_t timing_poll_timeout_ms(uint64_t busy_us)
{
        uint64_t ms = DIV_ROUND_UP(busy_us, 1000);
        if (ms == 0)
                ms = 1;
        if (ms > 0xFFFFFF)
                ms = 0xFFFFFF;
        return (uint32_t)ms;
}

uint64_t timing_qspi_erase_us(const Timing *t)
{
        if (t->mode == TIMING_FAST)
                return FAST_BUSY_US;
        /* Winbond W25Q16JV datasheet (the Raspberry Pi Pico's 2 MiB part),
         * 9.6 AC Electrical Characteristics: Sector Erase (4 KB) tSE 45 ms
         * typical. */
        return scaled(t, 45000);
}

uint64_t timing_qspi_program_us(const Timing *t, uint32_t bytes)
{
        if (t->mode == TIMING_FAST)
                return 50;
        /* W25Q-JV page program tPP ~0.7 ms typical per 256-byte page
         * (W25Q128JV datasheet 9.6; the W25Q16JV's table gives the same
         * order); partial pages cost a whole page. */
        return scaled(t, 700.0 * DIV_ROUND_UP(bytes, 256));
}

uint64_t timing_bulk_us(const Timing *t, uint32_t bytes)
{
        if (t->mode == TIMING_FAST)
                return 0;
        /* USB 2.0 5.8.4: at most 19 bulk packets of 64 bytes per 1 ms
         * full-speed frame, about 1.2 bytes per microsecond; at least one
         * frame per transfer. */
        return scaled(t, MAX(1000.0, bytes / 1.216));
}
