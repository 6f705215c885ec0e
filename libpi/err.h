/*
 * err: how libpi reports failure.  libpi never prints and never exits; a
 * function that can fail fills a caller-owned pi_err with one line that
 * names the file and the problem ("model.gguf: tensor 'x': offset beyond end
 * of file"), and the tool decides what to print and which status to exit with.
 */
#ifndef PI_ERR_H
#define PI_ERR_H

#include <stddef.h>

typedef struct pi_err {
    char msg[512];
} pi_err;

/* printf-style; a NULL err is allowed and ignored.  Always returns -1 so that
 * `return pi_err_set(err, ...)` reads naturally in int-returning functions. */
int pi_err_set(pi_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
