/*
 * train_impl.h: what train.c (the optimiser) and train_label.c (labels,
 * the loss, evaluation and calibration) share inside libpi.
 */
#ifndef PI_TRAIN_IMPL_H
#define PI_TRAIN_IMPL_H

#include <float.h>
#include <math.h>
#include <stdbool.h>

#include "train.h"

/* A token's positive set: |a_i| > cut, or |a_i| == cut and i <= last. */
typedef struct tokinfo {
    float cut;
    int32_t last;
    int32_t npos;
    float mpos; /* their total |a| */
} tokinfo;

static inline float mag(float a)
{
    float m = fabsf(a);
    return m <= FLT_MAX ? m : 0.0f; /* NaN and infinities carry no mass */
}

static inline bool positive(const tokinfo *t, float m, int i)
{
    return m > t->cut || (m == t->cut && i <= t->last);
}


void pi_tr_run(pi_pool *pool, int64_t n, pi_pool_fn fn, void *arg);
int pi_tr_check_params(const pi_train_params *prm, pi_err *err);
tokinfo *pi_tr_make_labels(const pi_train_data *data, int d, int ff,
                            const pi_train_params *prm, pi_pool *pool, const char *what,
                            pi_err *err);
int pi_tr_check_data(const pi_train_data *d, const char *what, pi_err *err);
int pi_tr_evaluate(const pi_predictor *p, int il, const pi_train_data *data,
                    const tokinfo *tok, pi_pool *pool, pi_train_eval *out, pi_err *err);
int pi_tr_check_layer(const pi_predictor *p, int il, const pi_train_params *prm,
                       const pi_train_data *data, pi_err *err);
int pi_tr_layer_error(pi_err *err, int il, const pi_err *e);
int pi_tr_calibrate(pi_predictor *p, int il, const pi_train_params *prm,
                     const pi_train_data *data, const tokinfo *tok, pi_pool *pool, pi_err *err);

#endif
