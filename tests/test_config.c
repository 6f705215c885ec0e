/* Tests of --config: YAML files become options that the command line overrides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static void expect_args(const pi_args *a, const char *const *want, int n)
{
    assert_int_equal(a->argc, n);
    for (int i = 0; i < n; i++)
        assert_string_equal(a->argv[i], want[i]);
    assert_null(a->argv[n]);
}

static void test_yaml_values_become_long_options(void **state)
{
    (void)state;
    const char *y = "threads: 2\njson: true\nquiet: false\nseed: ~\nmodel: \"a b.gguf\"\n"
                    "stop: [x, 'true']\n";
    pi_args a = { 0 };
    pi_err err;
    assert_int_equal(pi_config_parse(y, strlen(y), "c.yaml", &a, &err), 0);
    const char *want[] = { "--threads=2", "--json", "--model=a b.gguf", "--stop=x",
                           "--stop=true" };
    expect_args(&a, want, 5);
    pi_args_free(&a);
}

static void test_config_rejects_nesting_and_non_mappings(void **state)
{
    (void)state;
    const struct { const char *yaml, *want; } cases[] = {
        { "a:\n  b: 1\n", "nested mappings" },
        { "- 1\n- 2\n", "a sequence must be the value" },
        { "just text\n", "must be a mapping" },
        { "a: [1, [2]]\n", "a sequence must be the value" },
        { "a: &x 1\nb: *x\n", "aliases" },
        { "a: [1\n", "line" },
        { "config: other.yaml\n", "cannot name another" },
        { "--x: 1\n", "not an option name" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pi_args a = { 0 };
        pi_err err = { { 0 } };
        assert_int_not_equal(pi_config_parse(cases[i].yaml, strlen(cases[i].yaml), "c.yaml",
                                             &a, &err), 0);
        if (!strstr(err.msg, cases[i].want) || strncmp(err.msg, "c.yaml: ", 8))
            fail_msg("case %zu: got '%s'", i, err.msg);
        pi_args_free(&a);
    }
}

static void test_command_line_follows_config_so_it_overrides(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/pi-test-config-%d.yaml", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs("max-array: 3\njson: true\n", f);
    fclose(f);
    char flag[80];
    snprintf(flag, sizeof flag, "--config=%s", path);
    char *argv[] = { "prog", "-a", "5", flag, "file.gguf", "--", "--config", NULL };
    pi_args a;
    pi_err err;
    assert_int_equal(pi_args_expand(7, argv, &a, &err), 0);
    const char *want[] = { "prog", "--max-array=3", "--json", "-a", "5", "file.gguf", "--",
                           "--config" };
    expect_args(&a, want, 8);
    pi_args_free(&a);
    char *twice[] = { "prog", "--config", path, flag, NULL };
    assert_int_not_equal(pi_args_expand(4, twice, &a, &err), 0);
    assert_non_null(strstr(err.msg, "twice"));
    char *missing[] = { "prog", "--config", NULL };
    assert_int_not_equal(pi_args_expand(2, missing, &a, &err), 0);
    char *absent[] = { "prog", "--config=/nonexistent.yaml", NULL };
    assert_int_not_equal(pi_args_expand(2, absent, &a, &err), 0);
    assert_non_null(strstr(err.msg, "/nonexistent.yaml: "));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_values_become_long_options),
        cmocka_unit_test(test_config_rejects_nesting_and_non_mappings),
        cmocka_unit_test(test_command_line_follows_config_so_it_overrides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
