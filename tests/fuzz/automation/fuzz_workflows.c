/*
 * Fuzzes the workflow request body check (automation workflows_check.c,
 * and through it every job type's args check in job_types.c, the cron
 * parser and time-zone check): the input is a POST or PATCH
 * /automation/workflows body; the first byte picks POST or PATCH.
 * Invariant: a refusal names a field and a reason; an accepted POST body
 * has a name and a non-empty steps array whose steps all got "args" and
 * "max_attempts" filled in. FUZZ_VERBOSE=1 prints each refusal (seeds).
 */
#include <jansson.h>
#include <stdio.h>

#include "../fuzz.h"
#include "../../../services/automation/src/workflows.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char field[128], why[256];
    json_t *body, *steps, *st;
    int partial;
    size_t i;

    if (size < 1)
        return 0;
    partial = data[0] & 1;
    body = json_loadb((const char *)data + 1, size - 1, 0, NULL);
    if (!body)
        return 0;
    field[0] = why[0] = '\0';
    if (auto_wf_check(body, partial, 3, field, sizeof field, why,
                      sizeof why) != 0) {
        if (getenv("FUZZ_VERBOSE"))   /* for writing seeds */
            fprintf(stderr, "refused: %s: %s\n", field, why);
        if (!memchr(field, 0, sizeof field) || !memchr(why, 0, sizeof why)
            || !why[0])
            abort();
    } else if (!partial) {
        steps = json_object_get(body, "steps");
        if (!json_is_string(json_object_get(body, "name")) ||
            !json_is_array(steps) || json_array_size(steps) == 0)
            abort();
        json_array_foreach(steps, i, st)
            if (!json_is_object(json_object_get(st, "args")) ||
                !json_is_integer(json_object_get(st, "max_attempts")))
                abort();
    }
    json_decref(body);
    return 0;
}
