/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "can-bus.h"
#include "avr-tty.h"
#include "control.h"
#include "usb-device.h"

typedef struct Client {
        Control *control;
        int fd;
        guint watch;
        GString *in;
        unsigned ref;
} Client;

typedef struct Waiter {
        Client *client;
        VBoard *board;
        BoardMode mode;
        guint timeout;
} Waiter;

struct Control {
        World *world;
        char *path;
        int fd;
        guint watch;
        GList *clients;
        GList *waiters;
        guint check_idle;
};

static Control *the_control; /* for world_on_mode_change */

static void client_unref(Client *c)
{
        if (--c->ref > 0)
                return;
        g_string_free(c->in, TRUE);
        g_free(c);
}

static void client_close(Client *c)
{
        if (c->fd < 0)
                return;
        if (c->watch)
                g_source_remove(c->watch);
        c->watch = 0;
        close(c->fd);
        c->fd = -1;
        c->control->clients = g_list_remove(c->control->clients, c);
        client_unref(c);
}

static void send_line(Client *c, const char *text)
{
        size_t n = strlen(text), off = 0;
        g_autofree char *line = g_strdup_printf("%s\n", text);

        n++;
        while (c->fd >= 0 && off < n) {
                ssize_t k = send(c->fd, line + off, n - off, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                g_usleep(1000);
                                continue;
                        }
                        return;
                }
                off += (size_t)k;
        }
}

static void answer(Client *c, json_t *o)
{
        g_autofree char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (s)
                send_line(c, s);
}

static json_t *error_reply(const char *format, ...) _printf_(1, 2);
static json_t *error_reply(const char *format, ...)
{
        va_list ap;
        g_autofree char *msg = NULL;

        va_start(ap, format);
        msg = g_strdup_vprintf(format, ap);
        va_end(ap);
        return json_pack("{s:b,s:s}", "ok", 0, "error", msg);
}

static json_t *ok_reply(void)
{
        return json_pack("{s:b}", "ok", 1);
}

static int parse_u32(const char *s, uint32_t *ret)
{
        char *end;
        unsigned long long v;
        if (!s || !*s)
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno || *end || v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

static json_t *do_dump(World *w, VBoard *b, char **argv, int argc)
{
        uint32_t addr = b->flash->base, len = b->flash->size;
        g_autofree uint8_t *buf = NULL;
        g_autoptr(GError) error = NULL;
        int r;

        if (argc == 4 && (parse_u32(argv[2], &addr) < 0 || parse_u32(argv[3], &len) < 0))
                return error_reply("dump: bad ADDR or LEN");
        if (argc != 2 && argc != 4)
                return error_reply("usage: dump BOARD FILE [ADDR LEN]");
        buf = g_malloc(MAX(len, 1));
        g_mutex_lock(&w->lock);
        avr_board_sync_flash(b);
        r = flash_model_read(b->flash, addr, buf, len);
        g_mutex_unlock(&w->lock);
        if (r < 0)
                return error_reply("dump: 0x%08x+%u is outside the flash", addr, len);
        if (!g_file_set_contents(argv[1], (const char *)buf, len, &error))
                return error_reply("dump: %s", error->message);
        return json_pack("{s:b,s:s,s:i,s:i}", "ok", 1, "file", argv[1], "address", (json_int_t)addr,
                         "length", (json_int_t)len);
}

static gboolean check_waiters(gpointer userdata);

static gboolean on_wait_timeout(gpointer userdata)
{
        Waiter *wt = userdata;
        Control *ctl = wt->client->control;

        wt->timeout = 0;
        ctl->waiters = g_list_remove(ctl->waiters, wt);
        answer(wt->client,
               error_reply("timeout: board %u is %s, not %s", wt->board->index,
                           board_mode_to_string(wt->board->mode), board_mode_to_string(wt->mode)));
        client_unref(wt->client);
        g_free(wt);
        return G_SOURCE_REMOVE;
}

static gboolean check_waiters(gpointer userdata)
{
        Control *ctl = userdata;
        World *w = ctl->world;

        ctl->check_idle = 0;
        for (GList *l = ctl->waiters; l;) {
                Waiter *wt = l->data;
                GList *next = l->next;
                bool done;

                g_mutex_lock(&w->lock);
                done = wt->board->mode == wt->mode;
                g_mutex_unlock(&w->lock);
                if (done) {
                        ctl->waiters = g_list_delete_link(ctl->waiters, l);
                        g_source_remove(wt->timeout);
                        g_mutex_lock(&w->lock);
                        answer(wt->client,
                               json_pack("{s:b,s:o}", "ok", 1, "board", vboard_describe(wt->board)));
                        g_mutex_unlock(&w->lock);
                        client_unref(wt->client);
                        g_free(wt);
                }
                l = next;
        }
        return G_SOURCE_REMOVE;
}

static void on_mode_change(World *w)
{
        /* lock held, main thread or worker: look in an idle callback */
        if (the_control && !the_control->check_idle)
                the_control->check_idle = g_idle_add(check_waiters, the_control);
}

/* Returns NULL when the answer is deferred. */
static json_t *handle(Client *c, char **argv, int argc)
{
        Control *ctl = c->control;
        World *w = ctl->world;
        const char *verb = argv[0];
        VBoard *b = NULL;
        json_t *o;

        if (streq(verb, "list")) {
                json_t *a = json_array();
                g_mutex_lock(&w->lock);
                for (size_t i = 0; i < w->n_boards; i++)
                        json_array_append_new(a, vboard_describe(w->boards[i]));
                g_mutex_unlock(&w->lock);
                return json_pack("{s:b,s:o}", "ok", 1, "boards", a);
        }
        if (streq(verb, "help"))
                return json_pack(
                        "{s:b,s:s}", "ok", 1, "verbs",
                        "list unplug plug boot0-reset reset power-cycle quirk unquirk dump read stats "
                        "wait help");
        if (argc < 2)
                return error_reply("usage: %s BOARD ...", verb);
        if (g_str_has_prefix(verb, "can-"))
                return can_bus_control(w, verb, argv[1]);
        b = world_find_board(w, argv[1]);
        if (!b)
                return error_reply("no such board (or not unique): %s", argv[1]);

        if (streq(verb, "unplug")) {
                g_mutex_lock(&w->lock);
                b->unplugs++;
                vboard_event(b, "unplug", "control");
                if (b->pending_source) {
                        GSource *s = g_main_context_find_source_by_id(NULL, b->pending_source);
                        if (s)
                                g_source_destroy(s);
                        b->pending_source = 0;
                }
                g_mutex_unlock(&w->lock);
                vboard_power_down(b, "unplug");
                return ok_reply();
        }
        if (streq(verb, "plug")) {
                int r;
                g_mutex_lock(&w->lock);
                vboard_event(b, "plug", "control");
                g_mutex_unlock(&w->lock);
                if (b->usb)
                        return error_reply("board %u is plugged in already", b->index);
                r = vboard_power_up(b, vboard_boot_mode(b));
                if (r < 0)
                        return error_reply("plug: %s", g_strerror(-r));
                return ok_reply();
        }
        if (streq(verb, "boot0-reset") || streq(verb, "reset") || streq(verb, "power-cycle")) {
                g_mutex_lock(&w->lock);
                vboard_event(b, verb, "control");
                g_mutex_unlock(&w->lock);
                /* off the bus before the answer, so a following `wait`
                 * cannot see the old appearance */
                vboard_power_down(b, verb);
                g_mutex_lock(&w->lock);
                /* BOOT0 held while the core resets: the ROM bootloader
                 * (AN2606); otherwise the board boots as its firmware would */
                vboard_schedule(b, 0, streq(verb, "boot0-reset") ? vboard_rom_mode(b) : (BoardMode)-1,
                                timing_reenumerate_us(&w->timing), verb);
                g_mutex_unlock(&w->lock);
                return ok_reply();
        }
        if (streq(verb, "quirk") || streq(verb, "unquirk")) {
                int r;
                if (argc != 3)
                        return error_reply("usage: %s BOARD QUIRK", verb);
                g_mutex_lock(&w->lock);
                r = vboard_set_quirk(b, argv[2], streq(verb, "quirk"));
                g_mutex_unlock(&w->lock);
                if (r < 0)
                        return error_reply("bad quirk: %s", argv[2]);
                return ok_reply();
        }
        if (streq(verb, "dump"))
                return do_dump(w, b, argv + 1, argc - 1);
        if (streq(verb, "read")) {
                uint32_t addr, len;
                uint8_t buf[65536];
                GString *hex;
                int r;
                if (argc != 4 || parse_u32(argv[2], &addr) < 0 || parse_u32(argv[3], &len) < 0 ||
                    len > sizeof(buf))
                        return error_reply("usage: read BOARD ADDR LEN (LEN <= 65536)");
                g_mutex_lock(&w->lock);
                avr_board_sync_flash(b);
                r = flash_model_read(b->flash, addr, buf, len);
                if (r < 0)
                        r = flash_model_read(b->option_bytes, addr, buf, len);
                g_mutex_unlock(&w->lock);
                if (r < 0)
                        return error_reply("read: 0x%08x+%u is outside the flash", addr, len);
                hex = g_string_sized_new(2 * len + 1);
                for (uint32_t i = 0; i < len; i++)
                        g_string_append_printf(hex, "%02x", buf[i]);
                o = json_pack("{s:b,s:s}", "ok", 1, "hex", hex->str);
                g_string_free(hex, TRUE);
                return o;
        }
        if (streq(verb, "stats")) {
                g_mutex_lock(&w->lock);
                o = vboard_stats(b);
                g_mutex_unlock(&w->lock);
                json_object_set_new(o, "ok", json_true());
                return o;
        }
        if (streq(verb, "wait")) {
                BoardMode m;
                uint32_t ms;
                Waiter *wt;
                if (argc != 4 || (m = board_mode_from_string(argv[2])) < 0 || parse_u32(argv[3], &ms) < 0)
                        return error_reply("usage: wait BOARD app|dfu|katapult|off TIMEOUT_MS");
                g_mutex_lock(&w->lock);
                if (b->mode == m) {
                        o = json_pack("{s:b,s:o}", "ok", 1, "board", vboard_describe(b));
                        g_mutex_unlock(&w->lock);
                        return o;
                }
                g_mutex_unlock(&w->lock);
                wt = g_new0(Waiter, 1);
                wt->client = c;
                c->ref++;
                wt->board = b;
                wt->mode = m;
                wt->timeout = g_timeout_add(ms, on_wait_timeout, wt);
                ctl->waiters = g_list_append(ctl->waiters, wt);
                return NULL;
        }
        return error_reply("unknown verb: %s", verb);
}

static gboolean on_client(gint fd, GIOCondition cond, gpointer userdata)
{
        Client *c = userdata;
        char buf[4096];
        ssize_t n;
        char *nl;

        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return G_SOURCE_CONTINUE;
        if (n <= 0) {
                c->watch = 0;
                client_close(c);
                return G_SOURCE_REMOVE;
        }
        g_string_append_len(c->in, buf, n);
        c->ref++;
        while (c->fd >= 0 && (nl = memchr(c->in->str, '\n', c->in->len))) {
                g_autofree char *line = g_strndup(c->in->str, (gsize)(nl - c->in->str));
                g_auto(GStrv) argv = NULL;
                int argc = 0;
                json_t *o;

                g_string_erase(c->in, 0, (gssize)(nl - c->in->str) + 1);
                g_strstrip(line);
                if (!*line)
                        continue;
                if (!g_shell_parse_argv(line, &argc, &argv, NULL)) {
                        answer(c, error_reply("cannot parse request"));
                        continue;
                }
                o = handle(c, argv, argc);
                if (o)
                        answer(c, o);
        }
        client_unref(c);
        return G_SOURCE_CONTINUE;
}

static gboolean on_accept(gint fd, GIOCondition cond, gpointer userdata)
{
        Control *ctl = userdata;
        Client *c;
        int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (cfd < 0)
                return G_SOURCE_CONTINUE;
        c = g_new0(Client, 1);
        c->control = ctl;
        c->fd = cfd;
        c->ref = 1;
        c->in = g_string_new(NULL);
        c->watch = g_unix_fd_add(cfd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_client, c);
        ctl->clients = g_list_prepend(ctl->clients, c);
        return G_SOURCE_CONTINUE;
}

int control_new(Control **ret, World *w, const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        Control *ctl;
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        ctl = g_new0(Control, 1);
        ctl->world = w;
        ctl->path = g_strdup(path);
        ctl->fd = fd;
        ctl->watch = g_unix_fd_add(fd, G_IO_IN, on_accept, ctl);
        the_control = ctl;
        world_on_mode_change = on_mode_change;
        *ret = ctl;
        return 0;
}

Control *control_free(Control *ctl)
{
        if (!ctl)
                return NULL;
        while (ctl->waiters) {
                Waiter *wt = ctl->waiters->data;
                ctl->waiters = g_list_delete_link(ctl->waiters, ctl->waiters);
                g_source_remove(wt->timeout);
                client_unref(wt->client);
                g_free(wt);
        }
        while (ctl->clients)
                client_close(ctl->clients->data);
        if (ctl->check_idle)
                g_source_remove(ctl->check_idle);
        g_source_remove(ctl->watch);
        close(ctl->fd);
        unlink(ctl->path);
        g_free(ctl->path);
        the_control = NULL;
        world_on_mode_change = NULL;
        g_free(ctl);
        return NULL;
}
