/* What the in-tree plugin unit tests share around the fake host (sdk/testing/fakehost.h). */
#ifndef REMORA_PLUGIN_TEST_H
#define REMORA_PLUGIN_TEST_H

#include <stdio.h>

#include <remora/plugin.h>

#include "fakehost.h"

/* Creates an instance of the plugin under test (its rmr_plugin_describe()) from conf. On
 * failure returns NULL; the error goes to *rc_out when given, else it is printed as a TAP
 * comment with the host's reason. */
static inline rmr_instance_t *plugin_make(struct rmr_fakehost *fh, const char *conf, int *rc_out)
{
    char err[256] = "";
    rmr_instance_t *ins = NULL;
    int rc = rmr_fakehost_create(fh, rmr_plugin_describe(), conf, &ins, err, sizeof err);
    if (rc_out != NULL)
        *rc_out = rc;
    else if (rc != 0)
        printf("# create failed: %s (%s)\n", rmr_strerror(rc), err);
    return rc == 0 ? ins : NULL;
}

#endif
