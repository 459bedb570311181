/* A unit test of the heartbeat example on the fake host, built out of tree with
 * pkg-config remora-testing: no event loop, no sleeping, the clock is stepped by hand. */
#include <stdio.h>
#include <string.h>

#include <remora/fakehost.h>

static int failures;

static void check(int ok, const char *what)
{
    printf("%sok - %s\n", ok ? "" : "not ", what);
    failures += !ok;
}

int main(void)
{
    char err[256];
    struct rmr_fakehost *fh = rmr_fakehost_new();
    rmr_instance_t *ins = NULL;
    check(rmr_fakehost_create(fh, rmr_plugin_describe(), "interval = 5s", &ins, err, sizeof err) ==
              0,
          "create with interval = 5s");
    check(rmr_fakehost_start(fh, ins) == 0, "start");
    rmr_fakehost_advance(fh, 4999);
    check(rmr_fakehost_emitted_count(fh) == 0, "nothing before the interval");
    rmr_fakehost_advance(fh, 1);
    check(rmr_fakehost_emitted_count(fh) == 1, "one batch at 5 s");
    if (rmr_fakehost_emitted_count(fh) == 1) {
        struct rmr_metric m = {.struct_size = sizeof m};
        const rmr_batch_t *b = rmr_fakehost_emitted(fh, 0);
        check(rmr_metric_get(b, 0, &m) == 0, "the record is a metric");
        check(m.name.len == 17 && memcmp(m.name.ptr, "example.heartbeat", 17) == 0, "its name");
        check(m.value == 1 && m.type == RMR_METRIC_GAUGE, "a gauge of 1");
        check(m.ntags == 1 && memcmp(m.tags[0].value.ptr, "example", 7) == 0, "tagged source");
    }
    check(rmr_fakehost_create(fh, rmr_plugin_describe(), "interval = -1s", &ins, err, sizeof err) !=
              0,
          "a negative interval is refused");
    rmr_fakehost_free(fh);
    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
