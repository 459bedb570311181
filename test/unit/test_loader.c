/* Loader: descriptor checks, ABI refusals with their sentence, file mode refusals, builtin-style
 * copies of smaller descriptors. argv[1] is the directory holding the test/abi plugins. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader.h"
#include "tap.h"

static int dummy_create(rmr_instance_t *ins, const void *cfg, void **state)
{
    return 0;
}
static void dummy_destroy(rmr_instance_t *ins, void *state)
{
}
static int dummy_encode(rmr_encoder_t *e, void *s, const rmr_batch_t *const *b, uint32_t n)
{
    return 0;
}

static struct rmr_plugin base_desc(void)
{
    struct rmr_plugin d = {
        .struct_size = sizeof d,
        .abi_major = RMR_ABI_MAJOR,
        .abi_minor = RMR_ABI_MINOR,
        .kind = RMR_KIND_INPUT,
        .name = "probe",
        .version = "1",
        .create = dummy_create,
        .destroy = dummy_destroy,
    };
    return d;
}

static void test_checks(void)
{
    char why[512];
    struct rmr_plugin out;
    struct rmr_plugin d = base_desc();
    IS_INT(loader_check(&d, "p.so", &out, why, sizeof why), 0, "a valid descriptor passes");
    IS_STR(out.name, "probe", "the copy keeps the name");

    d = base_desc();
    d.abi_major = RMR_ABI_MAJOR + 1;
    IS_INT(loader_check(&d, "/x/p.so", &out, why, sizeof why), RMR_EABI, "another major: EABI");
    CONTAINS(why, "/x/p.so", "the sentence names the file");
    char want[64];
    snprintf(want, sizeof want, "ABI %d.%d", RMR_ABI_MAJOR + 1, RMR_ABI_MINOR);
    CONTAINS(why, want, "the sentence names the plugin's ABI");
    snprintf(want, sizeof want, "ABI %d.%d", RMR_ABI_MAJOR, RMR_ABI_MINOR);
    CONTAINS(why, want, "the sentence names the host's ABI");
    CONTAINS(why, "rebuild the plugin against remora-sdk 1.x", "the sentence names the fix");

    d = base_desc();
    d.abi_minor = RMR_ABI_MINOR + 3;
    IS_INT(loader_check(&d, "p.so", &out, why, sizeof why), RMR_EABI, "a newer minor: EABI");
    CONTAINS(why, "newer than this remora", "the sentence says newer");
    CONTAINS(why, "upgrade remora", "and names the fix");

    d = base_desc();
    d.struct_size = 16;
    IS_INT(loader_check(&d, "p.so", &out, why, sizeof why), RMR_EABI, "a truncated descriptor");

    d = base_desc();
    d.name = "Bad-Name";
    IS_INT(loader_check(&d, "p.so", &out, why, sizeof why), RMR_EINVAL, "a bad name");
    d = base_desc();
    d.create = NULL;
    IS_INT(loader_check(&d, "p.so", &out, why, sizeof why), RMR_EINVAL, "create is required");
    d = base_desc();
    d.kind = RMR_KIND_OUTPUT;
    IS_INT(loader_check(&d, "p.so", &out, why, sizeof why), RMR_EINVAL, "outputs need encode");
    d.encode = dummy_encode;
    IS_INT(loader_check(&d, "p.so", &out, why, sizeof why), 0, "an output with encode passes");
    d = base_desc();
    d.kind = 7;
    IS_INT(loader_check(&d, "p.so", &out, why, sizeof why), RMR_EINVAL, "an unknown kind");

    /* A plugin compiled with a larger descriptor (a future minor it claims not to need) or a
     * smaller one: the host copies only what it declared, and never past its own size. */
    struct {
        struct rmr_plugin d;
        char future[64];
    } big;
    memset(&big, 0x5a, sizeof big);
    big.d = base_desc();
    big.d.struct_size = sizeof big;
    IS_INT(loader_check(&big.d, "p.so", &out, why, sizeof why), 0, "a larger descriptor passes");
    IS_UINT(out.struct_size, sizeof out, "the copy has the host's size");

    d = base_desc();
    d.classify = (int (*)(void *, const struct rmr_response *))(uintptr_t)1;
    d.struct_size = (uint32_t)LOADER_DESC_MIN_SIZE;
    IS_INT(loader_check(&d, "p.so", &out, why, sizeof why), 0, "the 1.0 size passes");
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(to, "wb");
    if (in == NULL || out == NULL) {
        if (in)
            fclose(in);
        if (out)
            fclose(out);
        return -1;
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
    return chmod(to, mode);
}

static const char *find_refusal(const struct registry *reg, const char *needle)
{
    for (uint32_t i = 0; i < reg->nrefused; i++)
        if (strstr(reg->refused[i].reason, needle) != NULL)
            return reg->refused[i].reason;
    return NULL;
}

static void test_files(const char *abi_dir)
{
    char dir[] = "/tmp/remora-loader-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        OK(0, "mkdtemp");
        return;
    }
    chmod(dir, 0755);
    const char *names[] = {"abi_frozen", "abi_major2", "abi_minor_next", "needs_path"};
    char from[4096], to[4096];
    for (size_t i = 0; i < 4; i++) {
        snprintf(from, sizeof from, "%s/%s.so", abi_dir, names[i]);
        snprintf(to, sizeof to, "%s/%s.so", dir, names[i]);
        OK(copy_file(from, to, 0755) == 0, "copy a test plugin");
    }
    struct registry reg = {0};
    IS_INT(loader_load_dir(&reg, dir), 0, "loading a directory succeeds");
    OK(registry_find(&reg, RMR_KIND_INPUT, "abi_frozen") != NULL,
       "a plugin built against the frozen 1.0 headers loads");
    OK(registry_find(&reg, RMR_KIND_OUTPUT, "needs_path") != NULL, "an output loads");
    OK(registry_find(&reg, RMR_KIND_INPUT, "abi_major2") == NULL, "a wrong major is not loaded");
    const char *r = find_refusal(&reg, "abi_major2.so");
    char want[128];
    snprintf(want, sizeof want, "built for remora plugin ABI 2.%d but this remora speaks ABI 1.%d",
             RMR_ABI_MINOR, RMR_ABI_MINOR);
    CONTAINS(r, want, "the wrong major is refused with the sentence");
    r = find_refusal(&reg, "abi_minor_next.so");
    snprintf(want, sizeof want, "newer than this remora's ABI 1.%d", RMR_ABI_MINOR);
    CONTAINS(r, want, "a newer minor is refused");
    registry_release(&reg);

    /* A world-writable plugin file is refused; the rest still load. */
    snprintf(to, sizeof to, "%s/abi_frozen.so", dir);
    chmod(to, 0777);
    memset(&reg, 0, sizeof reg);
    loader_load_dir(&reg, dir);
    OK(registry_find(&reg, RMR_KIND_INPUT, "abi_frozen") == NULL,
       "a world-writable file is refused");
    CONTAINS(find_refusal(&reg, "abi_frozen.so"), "writable by everyone", "the refusal says why");
    OK(registry_find(&reg, RMR_KIND_OUTPUT, "needs_path") != NULL, "other plugins still load");
    registry_release(&reg);
    chmod(to, 0755);

    /* A world-writable directory refuses everything in it. */
    chmod(dir, 0777);
    memset(&reg, 0, sizeof reg);
    loader_load_dir(&reg, dir);
    IS_UINT(reg.count, 0, "nothing loads from a world-writable directory");
    CONTAINS(find_refusal(&reg, "directory"), "writable by everyone", "the directory is named");
    registry_release(&reg);
    chmod(dir, 0755);

    /* The same plugin twice: the second is refused as a duplicate. */
    memset(&reg, 0, sizeof reg);
    snprintf(from, sizeof from, "%s/needs_path.so", dir);
    IS_INT(loader_load_file(&reg, from), 0, "load a file");
    IS_INT(loader_load_file(&reg, from), RMR_EEXIST, "the same name again is refused");
    registry_release(&reg);

    for (size_t i = 0; i < 4; i++) {
        snprintf(to, sizeof to, "%s/%s.so", dir, names[i]);
        unlink(to);
    }
    rmdir(dir);
}

int main(int argc, char **argv)
{
    test_checks();
    if (argc > 1)
        test_files(argv[1]);
    else
        OK(0, "the test/abi plugin directory is given");
    return tap_done();
}
