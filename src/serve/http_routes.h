// The HTTP routes of `wkvq serve` on a cpp-httplib server: POST /v1/completions,
// POST /v1/chat/completions (stream or not), GET /v1/models, GET /health, GET /metrics; the API
// key check before routing; every 4xx/5xx answered with an OpenAI-style error object.
#pragma once

#include <httplib.h>

#include "serve/server_context.h"

namespace wkvq::serve {

void add_routes(httplib::Server& svr, ServerContext& ctx);

}  // namespace wkvq::serve
