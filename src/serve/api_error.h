// An error answered to an HTTP client in OpenAI's form:
//   {"error": {"message": ..., "type": ..., "param": ... | null, "code": ... | null}}
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace wkvq::serve {

struct ApiError : std::runtime_error {
  int status;         // HTTP status: 400, 401, 404, 413, 429, 503, ...
  std::string type;   // invalid_request_error, authentication_error, rate_limit_error, ...
  std::string param;  // the request field at fault ("" = null)
  std::string code;   // a machine-readable code ("" = null)
  ApiError(int status_, std::string message, std::string type_ = "invalid_request_error",
           std::string param_ = "", std::string code_ = "")
      : std::runtime_error(std::move(message)),
        status(status_),
        type(std::move(type_)),
        param(std::move(param_)),
        code(std::move(code_)) {}
  nlohmann::json to_json() const {
    auto opt = [](const std::string& s) {
      return s.empty() ? nlohmann::json() : nlohmann::json(s);
    };
    return {{"error",
             {{"message", what()}, {"type", type}, {"param", opt(param)}, {"code", opt(code)}}}};
  }
};

}  // namespace wkvq::serve
