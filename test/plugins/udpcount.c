/* A test input on a datagram socket: every datagram becomes one gauge "udp.len" (its length)
 * tagged with its first word, emitted from the callback: on the loop, or with own_thread on
 * the listener's reader thread (which exercises emit from another thread). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <remora/plugin.h>

struct udp_cfg {
    const char *address;
    int32_t own_thread;
    int32_t reserved_;
    uint64_t rcvbuf;
};

struct udp_state {
    struct udp_cfg cfg;
    rmr_dgram_sock_t *sock;
};

static const struct rmr_option udp_options[] = {
    RMR_OPT_STR("address", "udp://127.0.0.1:0", 0, struct udp_cfg, address, "where to listen"),
    RMR_OPT_BOOLEAN("own_thread", "false", 0, struct udp_cfg, own_thread, "read on a thread"),
    RMR_OPT_BYTES("rcvbuf", "0", 0, struct udp_cfg, rcvbuf, "SO_RCVBUF to ask for"),
    RMR_OPT_END,
};

static void on_dgrams(rmr_instance_t *ins, void *arg, const struct rmr_dgram *msgs, uint32_t count)
{
    rmr_batch_t *b = rmr_batch_new(ins, NULL);
    for (uint32_t i = 0; i < count; i++) {
        size_t w = 0;
        while (w < msgs[i].len && msgs[i].data[w] != ' ')
            w++;
        struct rmr_tag tag = {RMR_STR("word"), {msgs[i].data, w}};
        struct rmr_metric m = {
            .struct_size = sizeof m,
            .type = RMR_METRIC_GAUGE,
            .name = RMR_STR("udp.len"),
            .value = (double)msgs[i].len,
            .tags = &tag,
            .ntags = 1,
        };
        rmr_metric_add(b, &m);
    }
    rmr_emit(ins, b);
}

static int udp_create(rmr_instance_t *ins, const void *config, void **state)
{
    struct udp_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return RMR_ENOMEM;
    st->cfg = *(const struct udp_cfg *)config;
    *state = st;
    return 0;
}

static int udp_start(rmr_instance_t *ins, void *state)
{
    struct udp_state *st = state;
    struct rmr_dgram_spec spec = {
        .struct_size = sizeof spec,
        .flags = st->cfg.own_thread ? RMR_DGRAM_OWN_THREAD : 0,
        .address = st->cfg.address,
        .rcvbuf_bytes = st->cfg.rcvbuf,
        .max_datagram = 2048,
    };
    return rmr_dgram_listen(ins, &spec, on_dgrams, st, &st->sock);
}

static int udp_stop(rmr_instance_t *ins, void *state)
{
    struct udp_state *st = state;
    rmr_dgram_close(st->sock);
    st->sock = NULL;
    return 0;
}

static void udp_destroy(rmr_instance_t *ins, void *state)
{
    free(state);
}

static const struct rmr_plugin udp_plugin = {
    .struct_size = sizeof(struct rmr_plugin),
    .abi_major = RMR_ABI_MAJOR,
    .abi_minor = RMR_ABI_MINOR,
    .kind = RMR_KIND_INPUT,
    .name = "udpcount",
    .version = "1.0.0",
    .description = "test input: one gauge per datagram",
    .options = udp_options,
    .config_size = sizeof(struct udp_cfg),
    .create = udp_create,
    .start = udp_start,
    .stop = udp_stop,
    .destroy = udp_destroy,
};

RMR_PLUGIN_DEFINE(udp_plugin)
