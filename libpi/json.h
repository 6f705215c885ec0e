/*
 * json: writing JSON text for the tools' --json output.  Strings from model
 * files are arbitrary bytes, so they are escaped as JSON requires and any
 * invalid UTF-8 becomes U+FFFD: the output always parses.
 */
#ifndef PI_JSON_H
#define PI_JSON_H

#include <stddef.h>
#include <stdio.h>

/* Writes s[0..n) as a quoted JSON string. */
void pi_json_write_str(FILE *f, const char *s, size_t n);
/* Writes a double as a JSON number (NaN and infinities become null). */
void pi_json_write_num(FILE *f, double x);

#endif
