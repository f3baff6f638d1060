#include "serve/http_routes.h"

#include <chrono>
#include <memory>

#include "core/error.h"
#include "serve/api_error.h"
#include "serve/client_probe.h"
#include "serve/openai_response.h"

namespace wkvq::serve {

namespace {

using nlohmann::json;

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(ServerContext& ctx, httplib::Response& res, const ApiError& e) {
  if (e.status == 429) {
    ++ctx.metrics->rejected;
  } else if (e.status < 500) {
    ++ctx.metrics->client_errors;
  }
  send_json(res, e.status, e.to_json());
}

// The message of an error status a route did not answer itself (no route, body too large, ...).
ApiError status_error(int status) {
  switch (status) {
    case 404:
      return {404, "no such route", "invalid_request_error", "", "not_found"};
    case 405:
      return {405, "method not allowed", "invalid_request_error"};
    case 413:
      return {413, "the request body is larger than this server accepts (--max-body)",
              "invalid_request_error", "", "request_too_large"};
    default:
      return {status, "HTTP error " + std::to_string(status),
              status < 500 ? "invalid_request_error" : "server_error"};
  }
}

// A streaming response: chunks as the scheduler produces text, then the last chunk (finish
// reason, usage) and [DONE]. A failed write (the client went away) cancels the sequence.
struct Stream {
  std::shared_ptr<RequestChannel> ch;
  ResponseHead head;
  bool role_sent = false, ended = false;
  std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();

  bool write(httplib::DataSink& sink, const std::string& s) {
    last_write = std::chrono::steady_clock::now();
    return sink.write(s.data(), s.size());
  }
  bool next(httplib::DataSink& sink) {
    if (head.kind == RequestKind::Chat && !role_sent) {
      role_sent = true;
      if (!write(sink, sse_event(stream_chunk(head, "", std::nullopt, std::nullopt, true)))) {
        return false;
      }
    }
    bool done = false;
    for (const std::string& text : ch->take(std::chrono::milliseconds(100), done)) {
      if (!write(sink, sse_event(stream_chunk(head, text, std::nullopt, std::nullopt)))) {
        return false;
      }
    }
    if (done) {
      if (!ch->error().empty()) {
        write(sink, sse_event(ApiError(500, ch->error(), "server_error").to_json()));
      } else {
        write(sink, sse_event(stream_chunk(head, "", ch->finish_reason(), ch->usage())));
      }
      write(sink, sse_done());
      ended = true;
      sink.done();
      return true;
    }
    // Idle (queued, or a long prefill): a comment line every second finds a client that left.
    if (std::chrono::steady_clock::now() - last_write > std::chrono::seconds(1)) {
      return write(sink, ": waiting\n\n");
    }
    return true;
  }
};

// `in_flight` counts the stream until httplib releases it.
void answer_stream(httplib::Response& res, std::shared_ptr<RequestChannel> ch,
                   const ResponseHead& head, std::atomic<int64_t>& in_flight) {
  auto st = std::make_shared<Stream>(Stream{std::move(ch), head});
  ++in_flight;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [st](size_t, httplib::DataSink& sink) {
        if (st->next(sink)) return true;
        st->ch->cancel();
        return false;
      },
      [st, &in_flight](bool) {
        if (!st->ended) st->ch->cancel();
        --in_flight;
      });
}

// The whole text of a request answered in one piece. Every 20 ms without the end the client's
// connection is probed; a client that left cancels its sequence (its KV blocks are freed at the
// next decode step, as for a stream whose write fails).
std::string wait_whole(const httplib::Request& req, RequestChannel& ch) {
  const ClientProbe probe(req);
  std::string text;
  for (bool ended = false; !ended;) {
    if (!ch.cancelled() && probe.gone()) ch.cancel();
    for (const std::string& piece : ch.take(std::chrono::milliseconds(20), ended)) text += piece;
  }
  return text;
}

void submit_or_throw(ServerContext& ctx, GenerationRequest g) {
  const int64_t len = static_cast<int64_t>(g.prompt.size()) + g.max_tokens;
  switch (ctx.scheduler->submit(std::move(g))) {
    case Scheduler::Submit::Accepted:
      return;
    case Scheduler::Submit::QueueFull:
      throw ApiError(429,
                     "the server is busy: every sequence slot is taken and the queue is "
                     "full; retry later",
                     "rate_limit_error", "", "rate_limit_exceeded");
    case Scheduler::Submit::ShuttingDown:
      throw ApiError(503, "the server is shutting down", "server_error", "", "shutting_down");
    case Scheduler::Submit::TooLarge:
      throw ApiError(400,
                     "the prompt and max_tokens (" + std::to_string(len) +
                         " tokens) exceed the KV budget of " +
                         std::to_string(ctx.scheduler->pool().tokens_capacity()) +
                         " tokens (--kv-budget); ask for fewer tokens",
                     "invalid_request_error", "max_tokens", "context_length_exceeded");
  }
}

void handle_generation(ServerContext& ctx, const httplib::Request& req, httplib::Response& res,
                       RequestKind kind) {
  ++ctx.in_flight;
  try {
    const OpenAiRequest r = parse_openai_request(req.body, kind);
    if (!r.model.empty() && r.model != ctx.model_id) {
      throw ApiError(404,
                     "the model '" + r.model + "' does not exist; this server serves '" +
                         ctx.model_id + "' (GET /v1/models)",
                     "invalid_request_error", "model", "model_not_found");
    }
    GenerationRequest g = make_generation(ctx, r);
    auto ch = std::make_shared<RequestChannel>();
    g.channel = ch;
    const ResponseHead head{
        kind, (kind == RequestKind::Chat ? "chatcmpl-" : "cmpl-") + std::to_string(ctx.next_id++),
        static_cast<int64_t>(std::time(nullptr)), ctx.model_id};
    submit_or_throw(ctx, std::move(g));
    ++ctx.metrics->requests;
    if (r.stream) {
      answer_stream(res, ch, head, ctx.in_flight);
    } else {
      const std::string text = wait_whole(req, *ch);
      if (!ch->error().empty()) throw ApiError(500, ch->error(), "server_error");
      send_json(res, 200, full_response(head, text, ch->finish_reason(), ch->usage()));
    }
  } catch (const ApiError& e) {
    send_error(ctx, res, e);
  } catch (const Error& e) {
    send_error(ctx, res, ApiError(400, e.what()));
  }
  --ctx.in_flight;
}

}  // namespace

void add_routes(httplib::Server& svr, ServerContext& ctx) {
  svr.set_pre_routing_handler([&ctx](const httplib::Request& req, httplib::Response& res) {
    if (ctx.api_key.empty() || req.path == "/health")
      return httplib::Server::HandlerResponse::Unhandled;
    if (bearer_matches(req.get_header_value("Authorization"), ctx.api_key)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    send_error(ctx, res,
               ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                        "invalid_request_error", "", "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  svr.set_error_handler([&ctx](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    send_error(ctx, res, status_error(res.status));
  });
  svr.Post("/v1/completions", [&ctx](const httplib::Request& req, httplib::Response& res) {
    handle_generation(ctx, req, res, RequestKind::Completion);
  });
  svr.Post("/v1/chat/completions", [&ctx](const httplib::Request& req, httplib::Response& res) {
    handle_generation(ctx, req, res, RequestKind::Chat);
  });
  svr.Get("/v1/models", [&ctx](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200,
              {{"object", "list"},
               {"data", json::array({{{"id", ctx.model_id},
                                      {"object", "model"},
                                      {"created", ctx.created},
                                      {"owned_by", "wkvq"}}})}});
  });
  svr.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, {{"status", "ok"}});
  });
  svr.Get("/metrics", [&ctx](const httplib::Request&, httplib::Response& res) {
    res.set_content(ctx.metrics->render(), "text/plain; version=0.0.4");
  });
}

}  // namespace wkvq::serve
