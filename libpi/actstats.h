/*
 * actstats: how sparse a model's FFN activations are, measured.
 *
 * While pi-profile runs a dense model, every layer's FFN activations (the
 * n_ff values between the gate/up and down projections, one row per token)
 * are added here.  For each row and each mass level q (0.90, 0.95, 0.99) the
 * module finds the smallest set of neurons whose |a| adds up to q of the
 * row's total |a|, and keeps how many neurons that took (a histogram over
 * 0..n_ff) and how often each neuron was in the set (its firing frequency).
 * It also keeps each neuron's total |a| and a histogram of magnitudes.
 *
 * The statistics are written as YAML (`pi-profile --stats FILE.yaml`): the
 * summary numbers are for people, the per-neuron firing frequencies are what
 * pi-pack reads back with pi_actstats_read_yaml(), which treats the file as
 * untrusted input.  The format is described above pi_actstats_write_yaml().
 *
 * Non-finite activations (NaN, infinities) are treated as 0: they carry no
 * mass and never fire.  They are left out of the magnitude statistics and
 * counted separately, so a broken kernel shows up in the file.
 *
 * A pi_actstats owns all its memory.  pi_actstats_add() uses scratch space
 * inside it, so one pi_actstats takes rows from one thread at a time.
 */
#ifndef PI_ACTSTATS_H
#define PI_ACTSTATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

#define PI_ACTSTATS_LEVELS 3 /* mass levels 0.90, 0.95, 0.99 */
#define PI_ACTSTATS_MAX_LAYERS 4096
#define PI_ACTSTATS_MAX_FF (1 << 20)

extern const double pi_actstats_levels[PI_ACTSTATS_LEVELS];
/* The same levels as they are spelt in YAML keys: "0.9", "0.95", "0.99". */
extern const char *const pi_actstats_level_names[PI_ACTSTATS_LEVELS];

typedef struct pi_actstats pi_actstats;

/* 1 <= n_layer <= PI_ACTSTATS_MAX_LAYERS, 1 <= n_ff <= PI_ACTSTATS_MAX_FF. */
pi_actstats *pi_actstats_new(int n_layer, int n_ff, pi_err *err);
void pi_actstats_free(pi_actstats *s);

/* Adds n tokens' activations of layer il: n rows of n_ff floats, row after
 * row (signed; the magnitude is |a|).  A few linear passes per row and no
 * sort of it: this runs for every token and layer.  Returns -1 (and adds
 * nothing) only for a bad layer, n < 0 or act NULL. */
int pi_actstats_add(pi_actstats *s, int il, const float *act, int n);

typedef struct pi_actstats_summary {
    int64_t tokens; /* rows added to this layer */
    /* Fraction of the n_ff neurons needed per token to keep each mass level:
     * mean over tokens and percentiles (nearest rank) of the distribution. */
    double needed_mean[PI_ACTSTATS_LEVELS];
    double needed_p10[PI_ACTSTATS_LEVELS];
    double needed_p50[PI_ACTSTATS_LEVELS];
    double needed_p90[PI_ACTSTATS_LEVELS];
    /* Share of all firings at each level carried by the 10% and 20% of
     * neurons (rounded up) that fire most often at that level. */
    double firing_share_top10[PI_ACTSTATS_LEVELS];
    double firing_share_top20[PI_ACTSTATS_LEVELS];
    /* Share of the layer's total |a| carried by those same most frequent
     * 10% and 20% of neurons at level 0.99. */
    double mass_share_top10, mass_share_top20;
    /* |a| over every finite value; percentiles are read off a histogram of
     * 1/16-octave bins, so they are within about 3% of the true value. */
    double mag_mean, mag_p50, mag_p90, mag_p99, mag_max;
    int64_t mag_zeros; /* values exactly 0 */
    int64_t nonfinite; /* NaN and infinities, treated as 0 */
} pi_actstats_summary;

/* Fails only for a bad layer or when out of memory (it sorts n_ff counts). */
int pi_actstats_summary_get(const pi_actstats *s, int il, pi_actstats_summary *out,
                            pi_err *err);

/* Firing frequencies of layer il at level index lv into out[0..n_ff): the
 * share of tokens whose minimal set included the neuron (0 with no tokens).
 * Returns -1 for a bad layer or level. */
int pi_actstats_frequency(const pi_actstats *s, int il, int lv, double *out);

typedef struct pi_actstats_meta {
    const char *model;    /* model file name; NULL writes null */
    uint64_t fingerprint; /* pi_gguf_fingerprint() of the model */
    const char *arch;     /* general.architecture; NULL writes null */
    int ctx;              /* context length the profile ran with */
} pi_actstats_meta;

/*
 * Writes the statistics as YAML to f (meta may be NULL); `name`, the
 * output's name, is for messages.  Numbers are %.6g.  The file is a mapping:
 *
 *   format: pi-actstats       version: 1
 *   model, fingerprint ("0x%016x"), arch, ctx, n_layer, n_ff, tokens
 *   levels: [0.9, 0.95, 0.99]
 *   layers: one mapping per layer with
 *     layer, tokens, nonfinite (values treated as 0)
 *     needed_fraction: {"0.9": {mean, p10, p50, p90}, ...}
 *     firing_share_top10, firing_share_top20: {"0.9": x, ...}
 *     mass_share_top10, mass_share_top20
 *     magnitude: mean, p50, p90, p99, max, log2_histogram (first_exponent,
 *       zeros, counts: [below 2^first_exponent, one per octave, overflow])
 *     frequency: {"0.9": [n_ff firing frequencies], "0.95": [...], "0.99": [...]}
 */
int pi_actstats_write_yaml(const pi_actstats *s, const pi_actstats_meta *meta, FILE *f,
                           const char *name, pi_err *err);

/* What pi-pack needs from a statistics file; the summary numbers are for
 * people and not read back. */
typedef struct pi_actstats_file {
    char *model, *arch; /* NULL when absent or null */
    uint64_t fingerprint;
    int ctx;            /* -1 when absent */
    int n_layer, n_ff;
    int64_t tokens;
    float *freq;        /* [n_layer][PI_ACTSTATS_LEVELS][n_ff], each in [0, 1] */
    /* A mixture of experts' `experts:` section (expertstats.h): how often the
     * router chose each expert, [n_layer][n_expert] counts, each at most
     * PI_ACTSTATS_MAX_COUNT; 0 and NULL when the file has none. */
    int n_expert;
    int64_t *usage;
} pi_actstats_file;

#define PI_ACTSTATS_MAX_EXPERTS 4096
#define PI_ACTSTATS_MAX_COUNT 0x1p50 /* a layer's sum of counts fits an int64 */

/* Parses text[0..len) (`name` is for messages) into *out, which owns its
 * memory afterwards.  Everything is checked: format and version, the header
 * numbers (n_layer and n_ff before layers), every layer present exactly
 * once, n_ff finite frequencies in [0, 1] per level; aliases are refused.
 * An `experts:` section is optional; when present it needs n_layer before
 * it and n_expert before its layers, and every layer exactly once with
 * n_expert integer counts in `usage`.
 * Keys it does not need are skipped.  Memory used is bounded by the values
 * actually present, not by the header.  On failure *out is left empty (safe
 * to free) and err names the problem:
 * "stats.yaml: layer 3: frequency 0.99 has 1535 values, expected 1536". */
int pi_actstats_read_yaml(const char *text, size_t len, const char *name,
                          pi_actstats_file *out, pi_err *err);
void pi_actstats_file_free(pi_actstats_file *f);

/* The n_expert routing counts of layer il (usage must not be NULL). */
static inline const int64_t *pi_actstats_file_usage(const pi_actstats_file *f, int il)
{
    return f->usage + (size_t)il * (size_t)f->n_expert;
}

/* The n_ff frequencies of layer il at level index lv. */
static inline const float *pi_actstats_file_freq(const pi_actstats_file *f, int il, int lv)
{
    return f->freq + ((size_t)il * PI_ACTSTATS_LEVELS + (size_t)lv) * (size_t)f->n_ff;
}

#endif
