/* oaistream.h - the OpenAI facade's streamed answers (docs/openai.md, Streaming): a run's
** text as chat.completion.chunk events, or as the Responses API's events, sent as the
** model produces it; then the finish (stop, or length when a budget cut the run), the
** usage when asked for, and [DONE]. The reply starts at the first piece, so a run that
** fails before any text still gets an HTTP error status. */
#ifndef WD_OAISTREAM_H
#define WD_OAISTREAM_H

#include "apicall.h"

typedef struct wd_oai_stream {
    wd_front *f;
    struct evhttp_request *req; /* NULL: the client went away */
    int responses;              /* the Responses API's events, not chat chunks */
    int include_usage;          /* stream_options.include_usage */
    int started;                /* the 200 is out */
    long long seq;              /* the Responses API's sequence_number */
    wd_buf sent;                /* the text sent so far */
    char run_id[37], model[160];
    long long created;
} wd_oai_stream;

/* a completed run as the Responses API gives it (status "completed", or "incomplete"
** when a budget cut it), one assistant message of output_text; caller owns */
json_t *wd_oai_response_object(const char *run_id, const char *model, const char *status, const char *text,
                               json_int_t in, json_int_t out);
/* a piece of the answer to the client: the reply and its opening events first, once */
void wd_oai_stream_text(wd_oai_stream *s, const char *text, size_t len);
/* The run ended with res: the rest of its answer (all of it when none was streamed),
** the finish, the usage, and the reply's end; a failure after the reply started is an
** error event. Answers nothing when the reply has not started and the run did not
** complete (the caller answers with an error status then): 1 answered, 0 not. */
int wd_oai_stream_end(wd_oai_stream *s, const json_t *res);
/* frees what s holds (not s); accepts NULL */
void wd_oai_stream_clear(wd_oai_stream *s);

#endif
