/* server.c - what the main thread and the workers of warden serve share (serve.h):
** api.c and serve.c both use it, neither calls the other for it. */
#include "serve.h"

wd_policy *wd_server_policy(wd_server *s)
{
    pthread_mutex_lock(&s->mu);
    wd_policy *p = wd_policy_ref(s->policy);
    pthread_mutex_unlock(&s->mu);
    return p;
}
