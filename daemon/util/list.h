/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Intrusive lists: the links live in the element, so adding or removing
 * allocates nothing and an element knows its neighbours.
 *
 *   struct Item { ...; LIST_FIELDS(struct Item, items); };
 *   struct Item *head = NULL;
 *   LIST_PREPEND(items, head, item);
 *   LIST_FOREACH(items, i, head) ...
 *   LIST_REMOVE(items, head, item);
 *
 * Doubly linked: removal of a known element is O(1). `name` tags the link
 * pair, so one element may sit in several lists.
 */

#include <stddef.h>

#define LIST_FIELDS(type, name) type *name##_next, *name##_prev

#define LIST_INIT(name, item)                                     \
        do {                                                      \
                (item)->name##_next = (item)->name##_prev = NULL; \
        } while (0)

#define LIST_PREPEND(name, head, item)                            \
        do {                                                      \
                __typeof__(*(head)) **_h = &(head), *_i = (item); \
                _i->name##_prev = NULL;                           \
                _i->name##_next = *_h;                            \
                if (*_h)                                          \
                        (*_h)->name##_prev = _i;                  \
                *_h = _i;                                         \
        } while (0)

/* O(n): walks to the tail. */
#define LIST_APPEND(name, head, item)                                  \
        do {                                                           \
                __typeof__(*(head)) **_h = &(head), *_i = (item), *_t; \
                _i->name##_next = NULL;                                \
                if (!*_h) {                                            \
                        _i->name##_prev = NULL;                        \
                        *_h = _i;                                      \
                        break;                                         \
                }                                                      \
                for (_t = *_h; _t->name##_next; _t = _t->name##_next)  \
                        ;                                              \
                _t->name##_next = _i;                                  \
                _i->name##_prev = _t;                                  \
        } while (0)

#define LIST_REMOVE(name, head, item)                                   \
        do {                                                            \
                __typeof__(*(head)) **_h = &(head), *_i = (item);       \
                if (_i->name##_next)                                    \
                        _i->name##_next->name##_prev = _i->name##_prev; \
                if (_i->name##_prev)                                    \
                        _i->name##_prev->name##_next = _i->name##_next; \
                else                                                    \
                        *_h = _i->name##_next;                          \
                _i->name##_next = _i->name##_prev = NULL;               \
        } while (0)

/* Take the first element off the list (NULL when empty). */
#define LIST_POP(name, head)                                         \
        ({                                                           \
                __typeof__(*(head)) **_ph = &(head), *_first = *_ph; \
                if (_first)                                          \
                        LIST_REMOVE(name, *_ph, _first);             \
                _first;                                              \
        })

#define LIST_FOREACH(name, i, head) for ((i) = (head); (i); (i) = (i)->name##_next)

/* Safe against removing (and freeing) `i` in the body. */
#define LIST_FOREACH_SAFE(name, i, n, head) \
        for ((i) = (head); (i) && (((n) = (i)->name##_next), 1); (i) = (n))

#define LIST_IS_EMPTY(head) ((head) == NULL)
