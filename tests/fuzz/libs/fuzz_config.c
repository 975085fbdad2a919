/*
 * Fuzzes the config getters (libs/config): the input up to the first NUL
 * is the value of setting FUZZ_V (environment), the rest the contents of
 * the file that FUZZ_F_FILE names (a memfd behind /proc/self/fd). Every
 * typed getter reads both; the error line must stay one NUL-terminated
 * line and the typed results must stay in their ranges.
 */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../fuzz.h"
#include "config/config.h"

static const char *const choices[] = {"open", "closed", "default", NULL};

static void check_cfg(const struct cfg *c)
{
    if (memchr(c->err, '\0', sizeof c->err) == NULL ||
        strchr(c->err, '\n') != NULL)
        abort();
}

static void read_all(struct cfg *c, const char *name)
{
    long n;
    double d;
    int b, e;

    (void)cfg_str(c, name, "dflt");
    n = cfg_int(c, name, 5, -10, 1000);
    d = cfg_double(c, name, 0.5, 0.0, 1.0);
    b = cfg_bool(c, name, 0);
    e = cfg_enum(c, name, "default", choices);
    if (n < -10 || n > 1000 || !(d >= 0.0 && d <= 1.0) || (b != 0 && b != 1)
        || e < 0 || e > 2)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *file;
    size_t flen;
    char *val = fuzz_split(data, size, 0, &file, &flen);
    char path[64];
    struct cfg c;
    int fd;

    fd = memfd_create("fuzz_cfg", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    if (flen && write(fd, file, flen) != (ssize_t)flen)
        abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

    setenv("FUZZ_V", val, 1);
    setenv("FUZZ_F_FILE", path, 1);
    cfg_init(&c, "fuzz");
    read_all(&c, "FUZZ_V");
    check_cfg(&c);
    cfg_cleanup(&c);
    cfg_init(&c, "fuzz");
    read_all(&c, "FUZZ_F");
    check_cfg(&c);
    cfg_cleanup(&c);

    unsetenv("FUZZ_V");
    unsetenv("FUZZ_F_FILE");
    close(fd);
    free(val);
    return 0;
}
