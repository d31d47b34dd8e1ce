/* seal.h - personal data in the audit log, sealed under its user's key so it can be
** erased without breaking the chain (docs/safety.md, Compliance).
**
** A field that audit.personal_fields names is replaced by "v1:KEY_ID:BASE64" (a random
** 24-byte nonce and the XChaCha20-Poly1305 sealing of the value's compact JSON, bound to
** the field's name and the record's run) and the record lists the fields it sealed in
** "sealed". The chain hashes the sealed text: destroying the key (wd_store_audit_erase)
** leaves every hash as it was, and the fields read "[ERASED]" ever after. */
#ifndef WD_SEAL_H
#define WD_SEAL_H

#include <jansson.h>
#include "policy.h"
#include "store.h"

typedef struct wd_seal_key {
    char id[17];
    unsigned char key[32];
} wd_seal_key;

/* 1 when the policy seals anything */
int wd_seal_wanted(const wd_policy *p);
/* 1 when the policy seals field (of a record of tool, or NULL) */
int wd_seal_field(const wd_policy *p, const char *field, const char *tool);
/* seals in place the fields of rec the policy names (for its event and tool); the bytes
** the record grew by */
size_t wd_seal_record(const wd_policy *p, json_t *rec, const wd_seal_key *k);

/* the keys a reader has fetched from the store, by id (caller frees; s is borrowed) */
typedef struct wd_keyring wd_keyring;
wd_keyring *wd_keyring_new(wd_store *s);
void wd_keyring_free(wd_keyring *kr); /* accepts NULL */
/* opens in place the sealed fields of rec: their values, or "[ERASED]" when the key was
** destroyed, "[SEALED]" when the store never held it (kr NULL: no store at all),
** "[UNREADABLE]" when the text was not sealed by warden. The fields opened, -1 when the
** store failed. */
int wd_unseal_record(wd_keyring *kr, json_t *rec);

#endif
