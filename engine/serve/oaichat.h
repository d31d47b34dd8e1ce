/* oaichat.h - OpenAI's API for clients written against it (docs/openai.md): the routes
** POST /v1/chat/completions, POST /v1/responses and GET /v1/models of warden serve */
#ifndef WD_OAICHAT_H
#define WD_OAICHAT_H

#include "apicall.h"

void wd_oai_chat(wd_call *c);      /* POST /v1/chat/completions: an agent's run, answered when it ends */
void wd_oai_models(wd_call *c);    /* GET /v1/models: the agents the key may run */
void wd_oai_responses(wd_call *c); /* POST /v1/responses: the same run, in the Responses API's shape */

#endif
