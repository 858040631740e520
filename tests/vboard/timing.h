/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * How long the emulated hardware takes. `fast` answers at once and reports
 * 1 ms poll timeouts (tests); `real` models datasheet values (benchmarks),
 * multiplied by `scale` (0.1 = ten times faster than the hardware).
 * Every constant in timing.c names its source.
 */

#include <stdbool.h>
#include <stdint.h>

typedef enum TimingMode {
        TIMING_FAST,
        TIMING_REAL,
        _TIMING_MODE_MAX,
        _TIMING_MODE_INVALID = -22,
} TimingMode;

typedef struct Timing {
        TimingMode mode;
        double scale;
} Timing;

const char *timing_mode_to_string(TimingMode m);
TimingMode timing_mode_from_string(const char *s);

/* All durations in microseconds. */
uint64_t timing_sector_erase_us(const Timing *t, uint32_t sector_size);
uint64_t timing_mass_erase_us(const Timing *t, uint32_t flash_size);
uint64_t timing_program_us(const Timing *t, uint32_t bytes);
uint64_t timing_control_transfer_us(const Timing *t);
uint64_t timing_reenumerate_us(const Timing *t);
/* Time between the leave request's GETSTATUS and the device vanishing. */
uint64_t timing_manifest_us(const Timing *t);
/* RP2040 QSPI flash (W25Q16JV): one 4 KiB sector erase; programming
 * `bytes` in 256-byte pages; a full-speed bulk transfer of `bytes`. */
uint64_t timing_qspi_erase_us(const Timing *t);
uint64_t timing_qspi_program_us(const Timing *t, uint32_t bytes);
uint64_t timing_bulk_us(const Timing *t, uint32_t bytes);
/* bwPollTimeout (ms, 24 bit) to report for `busy_us` of work left: never 0
 * while busy, so a client that honours it never asks too early. */
uint32_t timing_poll_timeout_ms(uint64_t busy_us);
