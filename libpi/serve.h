/*
 * serve: pi-serve's engine: generation slots over one shared model, a
 * bounded wait queue, and generation jobs whose text can be read while it
 * is being made.
 *
 * A pi_serve owns n_slots worker threads, each with its own pi_ctx (KV
 * cache, scratch, thread pool) over the one read-only pi_model.  A request
 * (serve_request.h) becomes a job with pi_serve_submit: its prompt is built
 * and tokenized on the caller's thread, checked against the context, and
 * queued; a free slot takes it, evaluates the prompt (skipping the whole
 * batches its KV cache still holds of the slot's previous prompt, and only
 * those, so that an answer never depends on what the slot did before) and
 * generates token by token.  Generated text is published to the job as it
 * is made, minus what might yet become a stop sequence or an incomplete
 * UTF-8 character, so a reader streaming the text sees exactly the bytes a
 * reader waiting for the end gets.  Text is always valid UTF-8 (invalid
 * bytes become U+FFFD).
 *
 * Ownership: pi_serve_submit returns a job with a reference held by the
 * caller; the caller drops it with pi_serve_job_release, which also stops
 * the generation when it has not finished (a client that went away frees
 * its slot at the next token).  Every job must be released before
 * pi_serve_free.
 */
#ifndef PI_SERVE_H
#define PI_SERVE_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "forward.h"
#include "serve_metrics.h"
#include "serve_request.h"
#include "tokenizer.h"

typedef struct pi_serve_params {
    pi_ctx_params ctx;    /* every slot's context */
    int n_slots;          /* concurrent generations, >= 1 */
    int n_queue;          /* jobs waiting for a slot beyond which submit refuses, >= 0 */
    int max_tokens;       /* cap on a job's completion tokens, >= 1 */
    const char *model_id; /* the name requests may give (copied) */
} pi_serve_params;

typedef struct pi_serve pi_serve;
typedef struct pi_serve_job pi_serve_job;

typedef enum pi_serve_finish {
    PI_SERVE_RUNNING,   /* not finished */
    PI_SERVE_STOP,      /* an end-of-generation token or a stop sequence */
    PI_SERVE_LENGTH,    /* max_tokens or the context reached */
    PI_SERVE_CANCELLED, /* released or cancelled before the end */
    PI_SERVE_FAILED,    /* an engine error */
} pi_serve_finish;

/* OpenAI's finish_reason: "stop", "length", or NULL for the others. */
const char *pi_serve_finish_reason(pi_serve_finish f);

/* The model and tokenizer must outlive the pi_serve.  NULL with err set
 * when a context cannot be made or a thread started. */
pi_serve *pi_serve_new(const pi_model *m, const pi_tokenizer *tok, const pi_serve_params *p,
                       pi_err *err);
/* Cancels what is running, joins the workers, frees the contexts. */
void pi_serve_free(pi_serve *s);

const char *pi_serve_model_id(const pi_serve *s);
int pi_serve_n_ctx(const pi_serve *s);
/* Whether the slots run sparse (a packed model with predictors, not dense). */
bool pi_serve_sparse(const pi_serve *s);
pi_serve_metrics *pi_serve_metrics_of(pi_serve *s);
/* The /metrics text with the current queue and slot gauges; malloc'ed. */
char *pi_serve_metrics_render(pi_serve *s, size_t *len);

/* Makes a job of r: checks the model name (absent, the model id, or the id
 * without ".gguf"), builds the prompt (chat: the model's ChatML template),
 * checks that prompt tokens + max_tokens fit the context, and queues it.
 * NULL with e set: 404 unknown model, 400 bad prompt or too long, 503 when
 * n_slots + n_queue jobs are already in the server. */
pi_serve_job *pi_serve_submit(pi_serve *s, const pi_serve_request *r, pi_serve_error *e);

/* What a job has made since byte `from` of its text. */
typedef struct pi_serve_out {
    char *text;             /* text[from..), malloc'ed; NULL when len is 0 */
    size_t len;
    pi_serve_finish finish; /* PI_SERVE_RUNNING until the job is over */
    int prompt_tokens, completion_tokens;
    char error[256];        /* why, for PI_SERVE_FAILED and PI_SERVE_CANCELLED */
} pi_serve_out;

/* Waits up to timeout_ms for text past `from` or for the end, then fills o
 * (o->len 0 and PI_SERVE_RUNNING: the time ran out).  -1 when out of memory. */
int pi_serve_job_read(pi_serve_job *j, size_t from, int timeout_ms, pi_serve_out *o);
int pi_serve_job_prompt_tokens(const pi_serve_job *j);
/* Drops the caller's reference; stops the job if it is queued or running. */
void pi_serve_job_release(pi_serve_job *j);

/* Stops every queued and running job (a second SIGINT while draining). */
void pi_serve_cancel_all(pi_serve *s);

#endif
