/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* util/list.h: order after prepend/append, removal at the head, middle and
 * tail, pop, and removal while walking. */
#include "tests.h"
#include "util/list.h"

typedef struct Item {
        int v;
        LIST_FIELDS(struct Item, items);
} Item;

/* The values from head to tail, and back from tail to head, as a string. */
static void order(Item *head, char *fwd, char *back)
{
        Item *i, *last = NULL;

        fwd[0] = back[0] = 0;
        LIST_FOREACH (items, i, head) {
                sprintf(fwd + strlen(fwd), "%d", i->v);
                last = i;
        }
        for (i = last; i; i = i->items_prev)
                sprintf(back + strlen(back), "%d", i->v);
}

#define CHECK_ORDER(head, want, want_back) \
        do {                               \
                char f[32], b[32];         \
                order(head, f, b);         \
                CHECK_STR(f, want);        \
                CHECK_STR(b, want_back);   \
        } while (0)

int main(void)
{
        Item it[5] = { { .v = 0 }, { .v = 1 }, { .v = 2 }, { .v = 3 }, { .v = 4 } };
        Item *head = NULL, *i, *n;

        CHECK(LIST_IS_EMPTY(head));
        LIST_APPEND(items, head, &it[1]);
        LIST_APPEND(items, head, &it[2]);
        LIST_PREPEND(items, head, &it[0]);
        LIST_APPEND(items, head, &it[3]);
        LIST_APPEND(items, head, &it[4]);
        CHECK_ORDER(head, "01234", "43210");

        LIST_REMOVE(items, head, &it[2]); /* middle */
        CHECK_ORDER(head, "0134", "4310");
        CHECK(it[2].items_next == NULL && it[2].items_prev == NULL);
        LIST_REMOVE(items, head, &it[0]); /* head */
        CHECK_ORDER(head, "134", "431");
        LIST_REMOVE(items, head, &it[4]); /* tail */
        CHECK_ORDER(head, "13", "31");

        CHECK(LIST_POP(items, head) == &it[1]);
        CHECK_ORDER(head, "3", "3");
        CHECK(LIST_POP(items, head) == &it[3]);
        CHECK(LIST_IS_EMPTY(head));
        CHECK(LIST_POP(items, head) == NULL);

        /* removing the odd ones while walking */
        for (int k = 4; k >= 0; k--)
                LIST_PREPEND(items, head, &it[k]);
        LIST_FOREACH_SAFE(items, i, n, head)
        if (i->v % 2)
                LIST_REMOVE(items, head, i);
        CHECK_ORDER(head, "024", "420");
        TESTS_EXIT();
}
