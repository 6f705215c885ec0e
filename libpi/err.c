/* err: filling a pi_err (see err.h). */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>

int pi_err_set(pi_err *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}
