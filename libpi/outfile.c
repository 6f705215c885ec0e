/*
 * outfile: complete-or-nothing output files (see outfile.h).
 */
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int pi_outfile_create(const char *path, char **tmp, pi_err *err)
{
    struct stat st;
    *tmp = NULL;
    if (!stat(path, &st) && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        int fd = open(path, O_WRONLY);
        if (fd < 0)
            pi_err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return fd;
    }
    size_t n = strlen(path) + 16;
    *tmp = malloc(n);
    if (!*tmp)
        return pi_err_set(err, "%s: out of memory", path);
    snprintf(*tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(*tmp);
    mode_t um = umask(0);
    umask(um);
    if (fd < 0 || fchmod(fd, 0666 & ~um)) {
        pi_err_set(err, "%s: cannot create: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(*tmp);
        }
        free(*tmp);
        *tmp = NULL;
        return -1;
    }
    return fd;
}

int pi_outfile_commit(char *tmp, const char *path, pi_err *err)
{
    int rc = 0;
    if (tmp && rename(tmp, path)) {
        rc = pi_err_set(err, "%s: cannot rename into place: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

void pi_outfile_discard(char *tmp)
{
    if (tmp)
        unlink(tmp);
    free(tmp);
}
