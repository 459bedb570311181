// The public headers compile as C++ (a plugin may be written in C++) and agree with C on the
// sizes that cross the ABI.
#include <remora/plugin.h>

#include <cstdio>

static_assert(sizeof(rmr_str) == 16, "rmr_str is pointer + length + reserved");
static_assert(sizeof(rmr_value) == 16, "rmr_value is type + length + 8-byte union");
static_assert(offsetof(rmr_plugin, struct_size) == 0, "descriptors start with their size");
static_assert(offsetof(rmr_host_api, struct_size) == 0, "the host table starts with its size");

int main()
{
    rmr_metric m = {};
    m.struct_size = sizeof m;
    m.name = rmr_str_c("cxx");
    std::printf("ok 1 - <remora/plugin.h> compiles as C++ (%s, %zu bytes)\n1..1\n",
                rmr_strerror(RMR_EFULL), sizeof m);
    return m.name.len == 3 ? 0 : 1;
}
