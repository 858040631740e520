/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "tty-port.h"

struct TtyPort {
        World *world;
        VBoard *board;
        char *name;     /* ttyACM0 */
        char *devnode;  /* /dev/ttyACM0 */
        char *pts;      /* the pty slave the node links to */
        char *syspath;  /* current sysfs path, NULL while absent */
        char *by_id;    /* link name under serial/by-id */
        int master;     /* owned by the testbed */
        int slave_keep; /* our own slave fd: the master never sees a hangup */
        guint watch;
        UMockdevIoctlBase *handler;
        bool present;
        int modem; /* TIOCM_* bits as the program set them */
};

const TtyModel *tty_model_for_mode(BoardMode mode)
{
        switch (mode) {
        case BOARD_MODE_APP:
                return &klipper_tty_model;
        case BOARD_MODE_KATAPULT:
                return &katapult_tty_model;
        case BOARD_MODE_DFU:
        case BOARD_MODE_BOOTSEL:
        case BOARD_MODE_OFF:
        case _BOARD_MODE_MAX:
        case _BOARD_MODE_INVALID:
                return NULL;
        }
        return NULL;
}

int tty_port_write(VBoard *b, const void *data, size_t len)
{
        TtyPort *p = b->tty;
        ssize_t n;

        if (!p || !p->present)
                return -ENODEV;
        n = write(p->master, data, len);
        return n < 0 ? -errno : (int)n;
}

static uint32_t current_baud(TtyPort *p)
{
        struct termios t;
        static const struct {
                speed_t s;
                uint32_t baud;
        } table[] = {
                { B0, 0 },           { B300, 300 },       { B600, 600 },       { B1200, 1200 },
                { B2400, 2400 },     { B4800, 4800 },     { B9600, 9600 },     { B19200, 19200 },
                { B38400, 38400 },   { B57600, 57600 },   { B115200, 115200 }, { B230400, 230400 },
                { B460800, 460800 }, { B500000, 500000 }, { B921600, 921600 }, { B1000000, 1000000 },
        };
        if (tcgetattr(p->master, &t) < 0)
                return 0;
        for (size_t i = 0; i < G_N_ELEMENTS(table); i++)
                if (cfgetospeed(&t) == table[i].s)
                        return table[i].baud;
        return 250000;
}

void tty_port_line_changed(VBoard *b, uint32_t baud, bool dtr)
{
        if (b->tty_model && b->tty_model->on_line)
                b->tty_model->on_line(b, b->tty_state, baud, dtr);
}

static gboolean on_master(gint fd, GIOCondition cond, gpointer userdata)
{
        TtyPort *p = userdata;
        World *w = p->world;
        uint8_t buf[4097];
        ssize_t n;

        n = read(fd, buf, sizeof(buf));
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return G_SOURCE_CONTINUE;
                /* EIO: no slave open; cannot happen while we keep ours */
                p->watch = 0;
                return G_SOURCE_REMOVE;
        }
        if (n == 0)
                return G_SOURCE_CONTINUE;

        g_mutex_lock(&w->lock);
        /* TIOCPKT (tty_ioctl(4)): the first byte says what follows */
        if (buf[0] == TIOCPKT_DATA) {
                if (n > 1 && p->present && p->board->tty_model && p->board->tty_model->on_data)
                        p->board->tty_model->on_data(p->board, p->board->tty_state, buf + 1, (size_t)n - 1);
        } else if (buf[0] & TIOCPKT_IOCTL) {
                /* the program changed termios (EXTPROC is set) */
                if (p->present)
                        tty_port_line_changed(p->board, current_baud(p), p->modem & TIOCM_DTR);
        }
        g_mutex_unlock(&w->lock);
        return G_SOURCE_CONTINUE;
}

/* umockdev 0.17.16 answers ENOTTY to termios and modem-line ioctls on an
 * emulated tty (emulation.md): forward termios to the pty, emulate the
 * modem lines (a pty has none). Runs on umockdev's worker thread. */
static gboolean on_tty_ioctl(UMockdevIoctlBase *base, UMockdevIoctlClient *client, gpointer userdata)
{
        TtyPort *p = userdata;
        World *w = p->world;
        unsigned long request = umockdev_ioctl_client_get_request(client);
        UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
        g_autoptr(GError) error = NULL;
        g_autoptr(UMockdevIoctlData) v = NULL;
        int old, bits, err = 0;
        glong r;

        switch (request) {
        case TIOCMGET:
        case TIOCMBIS:
        case TIOCMBIC:
        case TIOCMSET:
                v = umockdev_ioctl_data_resolve(arg, 0, sizeof(int), &error);
                if (!v) {
                        umockdev_ioctl_client_complete(client, -1, EFAULT);
                        return TRUE;
                }
                g_mutex_lock(&w->lock);
                old = p->modem;
                memcpy(&bits, v->data, sizeof(int));
                if (request == TIOCMGET) {
                        /* the firmware side shows DSR, CTS and CD asserted */
                        bits = p->modem | TIOCM_DSR | TIOCM_CTS | TIOCM_CD;
                        memcpy(v->data, &bits, sizeof(int));
                } else if (request == TIOCMBIS)
                        p->modem |= bits & (TIOCM_DTR | TIOCM_RTS);
                else if (request == TIOCMBIC)
                        p->modem &= ~(bits & (TIOCM_DTR | TIOCM_RTS));
                else
                        p->modem = bits & (TIOCM_DTR | TIOCM_RTS);
                if (p->present && (old ^ p->modem) & TIOCM_DTR)
                        /* read the baud now: a tcsetattr just before is
                         * already in the pty, even if the master's packet
                         * has not been processed yet */
                        tty_port_line_changed(p->board, current_baud(p), p->modem & TIOCM_DTR);
                g_mutex_unlock(&w->lock);
                umockdev_ioctl_client_complete(client, 0, 0);
                return TRUE;
        default:
                r = umockdev_ioctl_client_execute(client, &err, &error);
                umockdev_ioctl_client_complete(client, r, err);
                return TRUE;
        }
}

static char *by_id_name(const UsbIdentity *id)
{
        /* udev 60-serial.rules: usb-$ID_SERIAL-if$ID_USB_INTERFACE_NUM */
        return g_strdup_printf("usb-%s_%s_%s-if00", id->manufacturer, id->product, id->serial);
}

static void make_link(const char *dir, const char *name, const char *target)
{
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_mkdir_with_parents(dir, 0755);
        unlink(path);
        if (symlink(target, path) < 0)
                g_printerr("vboard: symlink %s: %m\n", path);
}

static int tty_port_new(World *w, VBoard *b, TtyPort **ret)
{
        TtyPort *p = g_new0(TtyPort, 1);
        p->world = w;
        p->board = b;
        p->name = g_strdup_printf("ttyACM%u", b->index);
        p->devnode = g_strdup_printf("/dev/%s", p->name);
        p->master = -1;
        p->slave_keep = -1;
        p->modem = TIOCM_DTR | TIOCM_RTS;
        *ret = p;
        return 0;
}

int tty_port_attach(World *w, VBoard *b, UsbDevice *d, const UsbIdentity *id)
{
        g_autoptr(GError) error = NULL;
        g_autofree char *model = NULL, *s = NULL, *devdir = NULL, *ioctldir = NULL, *serial = NULL;
        TtyPort *p;
        bool first = !b->tty;
        g_autofree char *node_line = NULL;

        if (first)
                tty_port_new(w, b, &b->tty);
        p = b->tty;
        g_free(p->syspath);
        p->syspath = g_strdup_printf("%s/tty/%s", d->iface_syspath, p->name);
        g_free(p->by_id);
        p->by_id = by_id_name(id);
        serial = g_strdup_printf("%s_%s_%s", id->manufacturer, id->product, id->serial);
        node_line = first ? g_strdup_printf("N: %s\n", p->name) : g_strdup("");

        s = g_strdup_printf("P: %s\n%s"
                            "E: SUBSYSTEM=tty\nE: DEVNAME=/dev/%s\nE: MAJOR=166\nE: MINOR=%u\n"
                            "E: ID_BUS=usb\nE: ID_VENDOR=%s\nE: ID_VENDOR_ENC=%s\nE: ID_VENDOR_ID=%04x\n"
                            "E: ID_MODEL=%s\nE: ID_MODEL_ENC=%s\nE: ID_MODEL_ID=%04x\nE: ID_REVISION=%04x\n"
                            "E: ID_SERIAL=%s\nE: ID_SERIAL_SHORT=%s\n"
                            "E: ID_USB_INTERFACES=:020201:0a0000:\nE: ID_USB_INTERFACE_NUM=00\n"
                            "E: ID_USB_DRIVER=cdc_acm\nE: ID_USB_VENDOR=%s\nE: ID_USB_MODEL=%s\n"
                            "E: ID_USB_SERIAL=%s\nE: ID_USB_SERIAL_SHORT=%s\n"
                            "E: ID_PATH=pci-0000:00:14.0-usb-0:%s:1.0\n"
                            "E: DEVLINKS=/dev/serial/by-id/%s\n"
                            "A: dev=166:%u\\n\n",
                            p->syspath + strlen("/sys"), node_line, p->name, b->index, id->manufacturer,
                            id->manufacturer, id->vid, id->product, id->product, id->pid, id->bcd_device,
                            serial, id->serial, id->manufacturer, id->product, serial, id->serial,
                            b->port + 2, p->by_id, b->index);
        /* Everything a program may touch is in place before "add", which
         * add_from_string() sends at once under the preload: a program that
         * opens the tty on that uevent must find the node, the by-id links
         * and the ioctl handler (else its fd silently gets the testbed's
         * _default handler: TIOCMBIS fails with ENOTTY), and its first
         * bytes must not be flushed away. Only the pty of the very first
         * appearance comes with the node itself. */
        devdir = g_build_filename(w->testbed_root, "dev", NULL);
        if (!first) {
                /* re-link the node of the first appearance; drop what was
                 * left in the pty by the previous appearance */
                if (p->pts)
                        make_link(devdir, p->name, p->pts);
                tcflush(p->master, TCIOFLUSH);
        }
        /* by-id link, twice: in the testbed's /dev and next to the ioctl
         * handler's socket, which umockdev looks up by the opened path
         * (emulation.md) */
        {
                g_autofree char *target = g_strdup_printf("../../%s", p->name);
                g_autofree char *byid = g_build_filename(devdir, "serial", "by-id", NULL);
                g_autofree char *ioctl_byid = g_build_filename(w->ioctl_dir, "dev", "serial", "by-id", NULL);
                make_link(byid, p->by_id, target);
                make_link(ioctl_byid, p->by_id, target);
        }
        g_mutex_lock(&w->lock);
        p->modem = TIOCM_DTR | TIOCM_RTS;
        /* the first appearance is present once its pty is set up below */
        p->present = !first;
        g_mutex_unlock(&w->lock);
        if (first) {
                p->handler = umockdev_ioctl_base_new();
                g_signal_connect(p->handler, "handle-ioctl", G_CALLBACK(on_tty_ioctl), p);
                if (!umockdev_testbed_attach_ioctl(w->testbed, p->devnode, p->handler, &error)) {
                        g_printerr("vboard: cannot attach tty handler: %s\n", error->message);
                        g_clear_error(&error);
                }
        }

        if (!umockdev_testbed_add_from_string(w->testbed, s, &error)) {
                g_printerr("vboard: umockdev: %s\n", error->message);
                g_mutex_lock(&w->lock);
                p->present = false;
                g_mutex_unlock(&w->lock);
                return -EIO;
        }

        if (first) {
                struct termios t;
                char target[PATH_MAX];
                g_autofree char *node = g_build_filename(devdir, p->name, NULL);
                ssize_t n;

                p->master = umockdev_testbed_get_dev_fd(w->testbed, p->devnode);
                if (p->master < 0) {
                        g_printerr("vboard: no pty behind %s\n", p->devnode);
                        return -EIO;
                }
                n = readlink(node, target, sizeof(target) - 1);
                if (n > 0) {
                        target[n] = 0;
                        p->pts = g_strdup(target);
                }
                /* keep a slave open: without one the master reports EIO
                 * and HUP forever while the program has the tty closed */
                if (p->pts)
                        p->slave_keep = open(p->pts, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
                /* emulation.md: TIOCPKT + EXTPROC make every termios change
                 * of the program readable on the master as TIOCPKT_IOCTL */
                ioctl(p->master, TIOCPKT, &(int){ 1 });
                if (tcgetattr(p->master, &t) == 0) {
                        cfmakeraw(&t);
                        t.c_lflag |= EXTPROC;
                        cfsetspeed(&t, B115200);
                        tcsetattr(p->master, TCSANOW, &t);
                }
                fcntl(p->master, F_SETFL, fcntl(p->master, F_GETFL) | O_NONBLOCK);
                p->watch = g_unix_fd_add(p->master, G_IO_IN, on_master, p);
                g_mutex_lock(&w->lock);
                p->present = true;
                g_mutex_unlock(&w->lock);
        }
        return 0;
}

void tty_port_detach(World *w, VBoard *b)
{
        TtyPort *p = b->tty;
        g_autofree char *devdir = NULL;

        if (!p || !p->present)
                return;
        g_mutex_lock(&w->lock);
        p->present = false;
        g_mutex_unlock(&w->lock);

        devdir = g_build_filename(w->testbed_root, "dev", NULL);
        {
                g_autofree char *a = g_build_filename(devdir, "serial", "by-id", p->by_id, NULL);
                g_autofree char *c =
                        g_build_filename(w->ioctl_dir, "dev", "serial", "by-id", p->by_id, NULL);
                unlink(a);
                unlink(c);
        }
        umockdev_testbed_uevent(w->testbed, p->syspath, "remove");
        umockdev_testbed_remove_device(w->testbed, p->syspath);
        {
                /* the node goes with the device; the pty stays for the
                 * next appearance */
                g_autofree char *node = g_build_filename(devdir, p->name, NULL);
                unlink(node);
        }
        g_clear_pointer(&p->syspath, g_free);
}

TtyPort *tty_port_free(TtyPort *p)
{
        if (!p)
                return NULL;
        if (p->watch)
                g_source_remove(p->watch);
        if (p->slave_keep >= 0)
                close(p->slave_keep);
        if (p->handler)
                g_object_unref(p->handler);
        g_free(p->name);
        g_free(p->devnode);
        g_free(p->pts);
        g_free(p->syspath);
        g_free(p->by_id);
        g_free(p);
        return NULL;
}

const char *tty_port_devnode(const TtyPort *p)
{
        return p && p->present ? p->devnode : NULL;
}

const char *tty_port_by_id(const TtyPort *p)
{
        return p && p->present ? p->by_id : NULL;
}
