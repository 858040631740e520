/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/json-file.h"
#include "util/macros.h"
#include "tests.h"

int main(void)
{
        char dir[] = "/tmp/test-json-file-XXXXXX";
        char path[256], *error = NULL;
        json_t *v = NULL;

        CHECK(mkdtemp(dir) != NULL);
        snprintf(path, sizeof(path), "%s/state.json", dir);

        CHECK_INT(json_file_read(path, &v, NULL), -ENOENT);

        static const char *const values[] = { "{\"jobs\":[1,2,3],\"name\":\"x\"}", "[]", "\"only a string\"",
                                              "{}" };
        for (size_t i = 0; i < ELEMENTSOF(values); i++) {
                json_auto_t *in = json_loads(values[i], JSON_DECODE_ANY, NULL);
                CHECK_INT(json_file_write_atomic(path, in, 0640), 0);
                json_auto_t *out = NULL;
                CHECK_INT(json_file_read(path, &out, NULL), 0);
                CHECK(json_equal(in, out));
        }

        struct stat st;
        CHECK_INT(stat(path, &st), 0);
        CHECK_INT(st.st_mode & 07777, 0640);

        /* No temporary files left behind. */
        DIR *d = opendir(dir);
        struct dirent *de;
        int n = 0;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        CHECK_INT(n, 1);

        /* Corrupt content is reported, not guessed. */
        FILE *f = fopen(path, "we");
        fputs("{\"a\": ", f);
        fclose(f);
        CHECK_INT(json_file_read(path, &v, &error), -EBADMSG);
        CHECK(error && strstr(error, "state.json"));
        free(error);

        /* A directory that does not exist fails cleanly. */
        json_auto_t *x = json_object();
        CHECK_INT(json_file_write_atomic("/nonexistent-dir/x.json", x, 0600), -ENOENT);

        unlink(path);
        rmdir(dir);
        TESTS_EXIT();
}
