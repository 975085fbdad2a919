/*
 * Fuzzes the auth request bodies' validation (platform): the input is a
 * JSON body as POST /auth/register, /auth/login, /auth/refresh,
 * /auth/logout, PATCH /users/{id} and POST /auth/password receive it.
 * What the handlers do before touching the database runs here: the email
 * normalisation and password policy (validation.c, password.c), UTF-8
 * and UUID checks, the refresh token's shape check and hash (refresh.c),
 * the logout scope and the admin roles array (admin_users.c).
 * Invariants: a normalised email fits and is a fixed point (normalising
 * it again gives the same text); a roles literal is "{...}".
 */
#include <jansson.h>
#include <stdio.h>

#include "../fuzz.h"
#include "../../../services/platform/src/admin_users.h"
#include "../../../services/platform/src/password.h"
#include "../../../services/platform/src/refresh.h"
#include "../../../services/platform/src/session_handlers.h"
#include "../../../services/platform/src/validation.h"

static const char *str_member(json_t *body, const char *key, size_t *len)
{
    json_t *v = json_object_get(body, key);

    if (!json_is_string(v))
        return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

static void check_email_pw(const char *e, size_t elen, const char *pw,
                           size_t pwlen)
{
    char email[PLAT_EMAIL_MAX + 1], again[PLAT_EMAIL_MAX + 1], why[128];

    if (plat_email_normalize(e, elen, email, sizeof email, why,
                             sizeof why) == 0) {
        if (strlen(email) > PLAT_EMAIL_MAX ||
            plat_email_normalize(email, strlen(email), again, sizeof again,
                                 why, sizeof why) != 0 ||
            strcmp(email, again) != 0)
            abort();
        if (pw)
            (void)plat_password_policy(pw, pwlen, email, why, sizeof why);
    } else if (!memchr(why, '\0', sizeof why)) {
        abort();
    }
    if (pw)
        (void)plat_password_policy(pw, pwlen, "", why, sizeof why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES,
                              &jerr);
    const char *e, *pw = NULL, *s;
    size_t elen = 0, pwlen = 0, len;
    unsigned char hash[PLAT_REFRESH_HASH_LEN];
    char roles[128], why[128];

    /* the raw bytes as an email / password / id, as if from a form */
    check_email_pw((const char *)data, size, NULL, 0);
    (void)plat_utf8_len((const char *)data, size);
    (void)plat_refresh_hash((const char *)data, size, hash);
    if (!json_is_object(body))
        goto done;
    pw = str_member(body, "password", &pwlen);
    e = str_member(body, "email", &elen);
    if (e)
        check_email_pw(e, elen, pw, pwlen);
    if ((s = str_member(body, "new_password", &len)) != NULL)
        (void)plat_password_policy(s, len, e ? e : "", why, sizeof why);
    if ((s = str_member(body, "refresh_token", &len)) != NULL)
        (void)plat_refresh_hash(s, len, hash);
    if ((s = str_member(body, "scope", &len)) != NULL)
        (void)plat_logout_scope_parse(s);
    if ((s = str_member(body, "id", &len)) != NULL) {
        (void)plat_is_uuid(s);
        (void)plat_utf8_len(s, len);
    }
    if (json_object_get(body, "roles") &&
        plat_roles_parse(json_object_get(body, "roles"), roles, sizeof roles,
                         why, sizeof why) == 0 &&
        (roles[0] != '{' || roles[strlen(roles) - 1] != '}'))
        abort();
done:
    json_decref(body);
    return 0;
}
