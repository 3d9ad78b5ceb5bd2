// A small client side for moe-server's tests and load test: POST a JSON body with httplib's
// client and receive the response as it arrives, split into Server-Sent Events.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace moe::server {

// Splits a byte stream into SSE events ("data: ...\n\n"): feed() takes bytes as they come and
// calls on_event with each complete event's data (without "data: ").
class SseSplitter {
 public:
  template <class F>
  void feed(std::string_view bytes, F&& on_event) {
    buffer_ += bytes;
    std::size_t pos = 0;
    for (std::size_t end; (end = buffer_.find("\n\n", pos)) != std::string::npos; pos = end + 2) {
      std::string_view frame(buffer_.data() + pos, end - pos);
      if (frame.substr(0, 6) == "data: ") frame.remove_prefix(6);
      on_event(frame);
    }
    buffer_.erase(0, pos);
  }
  bool empty() const noexcept { return buffer_.empty(); }

 private:
  std::string buffer_;
};

struct PostResult {
  bool ok = false;       // the transport finished (not an error, nor cancelled by on_bytes)
  int status = 0;
  std::string content_type;
  std::string body;      // everything received
  httplib::Error error = httplib::Error::Success;
};

// POSTs `body` (application/json) to `path`; on_bytes (optional) sees each piece as it arrives
// and may return false to close the connection there.
inline PostResult post_json(httplib::Client& client, const std::string& path, const std::string& body,
                            const std::string& api_key = {},
                            const std::function<bool(std::string_view)>& on_bytes = {}) {
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body;
  req.set_header("Content-Type", "application/json");
  if (!api_key.empty()) req.set_header("Authorization", "Bearer " + api_key);
  PostResult out;
  req.content_receiver = [&](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
    out.body.append(data, n);
    return on_bytes ? on_bytes(std::string_view(data, n)) : true;
  };
  const httplib::Result r = client.send(req);
  out.error = r.error();
  out.ok = static_cast<bool>(r);
  if (r) {
    out.status = r->status;
    out.content_type = r->get_header_value("Content-Type");
    if (out.body.empty()) out.body = r->body;  // error statuses may bypass the receiver
  }
  return out;
}

}  // namespace moe::server
