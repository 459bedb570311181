/* plugins/lib/ndjson: records as JSON lines, shared by the file and http outputs. */
#ifndef REMORA_PLUGINS_NDJSON_H
#define REMORA_PLUGINS_NDJSON_H

#include <remora/plugin.h>

/* Appends record i of b to p as one JSON object and a newline. Returns 1 when written, 0 when
 * the record was dropped (counted through enc: a non-finite value, an unknown kind), or an
 * RMR_E* error from writing (p must then be discarded). */
int ndjson_record(rmr_payload_t *p, rmr_encoder_t *enc, const rmr_batch_t *b, uint32_t i);

#endif
