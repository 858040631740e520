/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The part of Klipper's application that answers `identify` on its tty:
 * the data dictionary is the one embedded in the image in the board's own
 * virtual flash (found the way flashd finds it), so the version a board
 * reports is whatever was flashed last. An image without a dictionary is
 * no Klipper and answers nothing.
 *
 * Blocks are parsed as Klipper's firmware does (src/command.c): a bad block
 * is dropped up to the next sync byte; every good block is acknowledged by
 * the sequence of the next expected block, and identify is answered with
 * up to `count` bytes of the zlib dictionary at `offset`.
 */

#include <stddef.h>
#include <stdint.h>

#include "vboard.h"

typedef struct KlipperIdentify KlipperIdentify;

/* Lock held. *ret is NULL (and 0 returned) when the flash holds no dictionary. */
int klipper_identify_new(KlipperIdentify **ret, VBoard *b);
/* Where replies go (default: tty_port_write); a CAN node cuts them into
 * frames on its answer id. */
typedef void (*KlipperIdentifyWrite)(void *userdata, VBoard *b, const uint8_t *data, size_t len);
void klipper_identify_set_writer(KlipperIdentify *k, KlipperIdentifyWrite write, void *userdata);
KlipperIdentify *klipper_identify_free(KlipperIdentify *k);
/* Bytes from the host; replies go out through the writer. */
void klipper_identify_on_data(KlipperIdentify *k, VBoard *b, const uint8_t *data, size_t len);
