/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The control socket: a unix stream socket; each request is one line
 * `VERB ARGS...\n`, each answer one line of JSON. See README.md.
 */

#include "vboard.h"

typedef struct Control Control;

int control_new(Control **ret, World *w, const char *path);
Control *control_free(Control *c);
