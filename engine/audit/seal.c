/* seal.c - personal fields sealed under per-user keys, opened again by readers */
#include "seal.h"
#include "util.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG   crypto_aead_xchacha20poly1305_ietf_ABYTES

int wd_seal_wanted(const wd_policy *p) { return p->personal_fields.n > 0; }

/* does the entry "FIELD" or "FIELD:TOOL" name field k of a record of tool? */
static int names(const char *entry, const char *k, const char *tool)
{
    size_t kl = strlen(k);
    if (strncmp(entry, k, kl))
        return 0;
    if (!entry[kl])
        return 1;
    return entry[kl] == ':' && tool && !strcmp(entry + kl + 1, tool);
}

/* associated data: the field's name and the record's run, so a sealed value moved to
** another field or record does not open */
static size_t aad_of(const json_t *rec, const char *k, char *out, size_t n)
{
    const char *run = json_string_value(json_object_get(rec, "run_id"));
    int w = snprintf(out, n, "%s\n%s", k, run ? run : "");
    return w < 0 ? 0 : (size_t)w >= n ? n - 1 : (size_t)w;
}

/* ** A nonce never used twice under a key: 16 random bytes drawn once per thread, then a
** counter (a getrandom call per sealed field cost a run 5 system calls) */
static void make_nonce(unsigned char n[NONCE])
{
    static _Thread_local unsigned char prefix[NONCE - 8];
    static _Thread_local uint64_t count;
    if (!count)
        randombytes_buf(prefix, sizeof prefix);
    count++;
    memcpy(n, prefix, sizeof prefix);
    memcpy(n + sizeof prefix, &count, 8);
}

/* caller frees: "v1:ID:BASE64" of the value's JSON text */
static char *seal_value(const json_t *v, const char *aad, size_t aadlen, const wd_seal_key *k)
{
    char *plain = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    if (!plain)
        return NULL;
    size_t pl = strlen(plain), bl = NONCE + pl + TAG;
    unsigned char *box = malloc(bl);
    size_t b64 = sodium_base64_ENCODED_LEN(bl, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(4 + 16 + 1 + b64);
    if (!box || !out) {
        free(plain);
        free(box);
        free(out);
        return NULL;
    }
    make_nonce(box);
    unsigned long long cl = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(box + NONCE, &cl, (const unsigned char *)plain, pl,
                                               (const unsigned char *)aad, aadlen, NULL, box, k->key);
    sodium_memzero(plain, pl);
    free(plain);
    int w = snprintf(out, 22, "v1:%s:", k->id);
    sodium_bin2base64(out + w, b64, box, NONCE + (size_t)cl, sodium_base64_VARIANT_ORIGINAL);
    free(box);
    return out;
}

int wd_seal_field(const wd_policy *p, const char *field, const char *tool)
{
    for (size_t i = 0; i < p->personal_fields.n; i++)
        if (names(p->personal_fields.v[i], field, tool))
            return 1;
    return 0;
}

static int listed(const json_t *l, const char *key)
{
    size_t i;
    json_t *v;
    json_array_foreach(l, i, v) if (!strcmp(json_string_value(v), key)) return 1;
    return 0;
}

size_t wd_seal_record(const wd_policy *p, json_t *rec, const wd_seal_key *k)
{
    if (!p->personal_fields.n || !k)
        return 0;
    const char *tool = json_string_value(json_object_get(rec, "tool_name"));
    json_t *sealed = NULL;
    size_t grew = 0;
    /* by the policy's entries (a few lookups), not by the record's members */
    for (size_t i = 0; i < p->personal_fields.n; i++) {
        const char *entry = p->personal_fields.v[i], *colon = strchr(entry, ':');
        char key[64];
        size_t kl = colon ? (size_t)(colon - entry) : strlen(entry);
        if (kl >= sizeof key || (colon && (!tool || strcmp(colon + 1, tool))))
            continue;
        memcpy(key, entry, kl);
        key[kl] = '\0';
        json_t *v = json_object_get(rec, key);
        if (!v || json_is_null(v) || listed(sealed, key))
            continue; /* absent, or named twice (tool_args and tool_args:TOOL) and sealed already */
        char aad[300];
        size_t al = aad_of(rec, key, aad, sizeof aad);
        char *s = seal_value(v, aad, al, k);
        /* a value that cannot be sealed is not written in the clear */
        grew += s ? strlen(s) : 0;
        json_object_set_new(rec, key, json_string(s ? s : "[UNREADABLE]"));
        free(s);
        if (!sealed)
            sealed = json_array();
        json_array_append_new(sealed, json_string(key));
    }
    if (sealed)
        json_object_set_new(rec, "sealed", sealed);
    return grew;
}

#define RING 64

struct wd_keyring {
    wd_store *store;
    struct {
        char id[17];
        int have; /* 1 key, 0 erased, 2 unknown to this store */
        unsigned char key[32];
    } v[RING];
    int n, next;
};

wd_keyring *wd_keyring_new(wd_store *s)
{
    wd_keyring *kr = calloc(1, sizeof *kr);
    if (kr)
        kr->store = s;
    return kr;
}

void wd_keyring_free(wd_keyring *kr)
{
    if (kr)
        sodium_memzero(kr, sizeof *kr);
    free(kr);
}

/* the key of id: 1 and *key, 0 erased, 2 unknown to the store, -1 store error */
static int key_of(wd_keyring *kr, const char *id, const unsigned char **key)
{
    for (int i = 0; i < kr->n; i++)
        if (!strcmp(kr->v[i].id, id)) {
            *key = kr->v[i].key;
            return kr->v[i].have;
        }
    int slot = kr->next;
    kr->next = (kr->next + 1) % RING;
    if (kr->n < RING)
        kr->n++;
    int rc = wd_store_audit_key_get(kr->store, id, kr->v[slot].key);
    if (rc < 0) {
        kr->v[slot].id[0] = '\0';
        return -1;
    }
    wd_strlcpy(kr->v[slot].id, id, sizeof kr->v[slot].id);
    kr->v[slot].have = rc;
    *key = kr->v[slot].key;
    return kr->v[slot].have;
}

/* the value sealed in text, or a marker string */
static json_t *open_value(wd_keyring *kr, const char *text, const char *aad, size_t aadlen, int *failed)
{
    if (!kr)
        return json_string("[SEALED]");
    if (strncmp(text, "v1:", 3) || strlen(text) < 21 || text[19] != ':')
        return json_string("[UNREADABLE]");
    char id[17];
    memcpy(id, text + 3, 16);
    id[16] = '\0';
    const unsigned char *key = NULL;
    int have = key_of(kr, id, &key);
    if (have < 0)
        *failed = 1;
    if (have != 1)
        return json_string(have < 0 ? "[UNREADABLE]" : have == 2 ? "[SEALED]" : "[ERASED]");
    const char *b64 = text + 20;
    size_t bl = strlen(b64), got = 0;
    unsigned char *box = malloc(bl);
    unsigned char *plain = malloc(bl + 1);
    json_t *v = NULL;
    unsigned long long pl = 0;
    if (box && plain && sodium_base642bin(box, bl, b64, bl, NULL, &got, NULL, sodium_base64_VARIANT_ORIGINAL) == 0 &&
        got >= NONCE + TAG &&
        crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &pl, NULL, box + NONCE, got - NONCE,
                                                   (const unsigned char *)aad, aadlen, box, key) == 0)
        v = json_loadb((const char *)plain, (size_t)pl, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (plain)
        sodium_memzero(plain, bl + 1);
    free(box);
    free(plain);
    return v ? v : json_string("[UNREADABLE]");
}

int wd_unseal_record(wd_keyring *kr, json_t *rec)
{
    json_t *sealed = json_object_get(rec, "sealed");
    size_t i;
    json_t *f;
    int n = 0, failed = 0;
    json_array_foreach(sealed, i, f)
    {
        const char *k = json_string_value(f);
        const char *text = k ? json_string_value(json_object_get(rec, k)) : NULL;
        if (!text)
            continue;
        char aad[300];
        size_t al = aad_of(rec, k, aad, sizeof aad);
        json_object_set_new(rec, k, open_value(kr, text, aad, al, &failed));
        n++;
    }
    return failed ? -1 : n;
}
