// The public headers compile as C++ (a plugin may be written in C++) and agree with C on the
// sizes that cross the ABI.
#include <remora/plugin.h>

#include <cstdio>
#include <cstring>

static_assert(sizeof(rmr_str) == 16, "rmr_str is pointer + length + reserved");
static_assert(sizeof(rmr_value) == 16, "rmr_value is type + length + 8-byte union");
static_assert(offsetof(rmr_plugin, struct_size) == 0, "descriptors start with their size");
static_assert(offsetof(rmr_host_api, struct_size) == 0, "the host table starts with its size");

int main()
{
    rmr_metric m = {};
    m.struct_size = sizeof m;
    m.name = rmr_str_c("cxx");
    /* A host table that ends before hostname, as a 1.0 host's without it would. */
    rmr_host_api table = {};
    table.struct_size = offsetof(rmr_host_api, stop_done) + sizeof table.stop_done;
    rmr_handle handle = {&table};
    bool ok = m.name.len == 3 && std::strcmp(rmr_strerror(RMR_EFULL), "queue full") == 0 &&
              RMR_HOST_HAS(&handle, stop_done) && !RMR_HOST_HAS(&handle, hostname);
    std::printf("%sok 1 - <remora/plugin.h> compiles and runs as C++\n1..1\n", ok ? "" : "not ");
    return ok ? 0 : 1;
}
