/*
 * outfile: files that appear only when complete.  Every pi output (GGUF,
 * trace, YAML) is written under a temporary name beside its path and renamed
 * into place at the end, so an interrupted or failed run leaves nothing
 * half-written.  The temporary file gets the mode a plain creat() would
 * (0666 less the umask), not mkstemp's 0600.
 */
#ifndef PI_OUTFILE_H
#define PI_OUTFILE_H

#include "err.h"

/* Creates "path.tmp.XXXXXX"; returns its descriptor and puts its malloc'ed
 * name in *tmp, or -1 with err set ("path: cannot create: ..."). */
int pi_outfile_create(const char *path, char **tmp, pi_err *err);
/* Renames tmp onto path (or, when that fails, removes it, err set); frees
 * tmp either way.  The descriptor must be closed already. */
int pi_outfile_commit(char *tmp, const char *path, pi_err *err);
/* Removes tmp and frees it; accepts NULL. */
void pi_outfile_discard(char *tmp);

#endif
