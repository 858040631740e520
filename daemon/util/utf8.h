/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Strings from the world (/proc/<pid>/comm, USB descriptors, serial
 * numbers, udev properties, file names, the config file) are bytes, not
 * necessarily UTF-8; jansson refuses such a string (json_string() returns
 * NULL and a json_pack() around it fails whole). Everything that puts such
 * a string into JSON goes through json_string_sanitized().
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Well-formed UTF-8 (RFC 3629: no overlongs, surrogates or > U+10FFFF). */
bool utf8_is_valid(const char *s, size_t n);

/* A copy of s with every byte that is not part of a well-formed sequence
 * replaced by U+FFFD. NULL on out of memory. */
char *utf8_make_valid(const char *s);

/* Sanitize s in place within a buffer of `size` bytes (replacements that do
 * not fit are dropped at the end). */
void utf8_make_valid_in_place(char *s, size_t size);

/* json_string() of s made valid; json_null() for NULL. Only NULL on out of
 * memory. */
json_t *json_string_sanitized(const char *s);
