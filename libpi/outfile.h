/*
 * outfile: files that appear only when complete.  Every pi output (GGUF,
 * trace, YAML) is written under a temporary name beside its path and renamed
 * into place at the end, so an interrupted or failed run leaves nothing
 * half-written.  The temporary file gets the mode a plain creat() would
 * (0666 less the umask), not mkstemp's 0600.
 *
 * A path that names a device or a FIFO (/dev/null, a named pipe) is written
 * in place: renaming a file onto it would replace the node itself.
 */
#ifndef PI_OUTFILE_H
#define PI_OUTFILE_H

#include "err.h"

/* Creates "path.tmp.XXXXXX"; returns its descriptor and puts its malloc'ed
 * name in *tmp, or -1 with err set ("path: cannot create: ...").  For a
 * device or FIFO, opens path itself and sets *tmp to NULL. */
int pi_outfile_create(const char *path, char **tmp, pi_err *err);
/* Renames tmp onto path (or, when that fails, removes it, err set); frees
 * tmp either way; nothing to do for NULL (written in place).  The
 * descriptor must be closed already. */
int pi_outfile_commit(char *tmp, const char *path, pi_err *err);
/* Removes tmp and frees it; accepts NULL. */
void pi_outfile_discard(char *tmp);

#endif
