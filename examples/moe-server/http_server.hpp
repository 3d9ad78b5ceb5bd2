// moe-server's HTTP layer: cpp-httplib in front of moe::server::BasicApiService. It copies each
// request in (method, path, Authorization, body), the service's answer out, and pumps SSE
// streams through httplib's chunked content provider; a failed write or a dead socket ends the
// stream and, by dropping the EventStream, cancels the request's sequences. Shared by main.cpp
// and the loopback tests (tests/server).
#pragma once

#include <moe/server/service.hpp>

#include <httplib.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

namespace moe::server {

// OpenMP workers that spin between forward passes (libgomp's default) take the cores the HTTP
// threads need to accept and answer connections: with 2 cores and 64 streaming clients, P99
// inter-token latency went from 47 ms to 2 s. libgomp reads OMP_WAIT_POLICY once, when it is
// loaded, so a server main() that finds it unset sets it to passive and re-executes itself
// (returns only if that fails, or when the variable was already set).
inline void reexec_with_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (::setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  ::execv("/proc/self/exe", argv);
}

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                 // 0: any free port (see HttpServer::bind)
  int threads = 0;                 // connection threads; 0: slots + queue + 8 (every waiting client holds one)
  std::size_t max_body_bytes = std::size_t{4} << 20;
  int read_timeout_s = 30;
  int write_timeout_s = 30;
};

template <class Backend>
class HttpServer {
 public:
  HttpServer(BasicApiService<Backend>& service, const HttpOptions& options, int default_threads)
      : service_(service), options_(options) {
    const int threads = options.threads > 0 ? options.threads : default_threads;
    server_.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
    // Bodies past the limit are refused by httplib before they are read in full (413, then the
    // error handler below writes the JSON).
    server_.set_payload_max_length(options.max_body_bytes);
    server_.set_read_timeout(options.read_timeout_s, 0);
    server_.set_write_timeout(options.write_timeout_s, 0);
    // SSE writes are small and come one token at a time: without TCP_NODELAY, Nagle's algorithm
    // holds each behind the client's delayed ACK (tens of ms per token). Accepted sockets
    // inherit it from the listening one.
    server_.set_tcp_nodelay(true);
    const auto handler = [this](const httplib::Request& req, httplib::Response& res) { serve(req, res); };
    server_.Get(".*", handler);
    server_.Post(".*", handler);
    server_.Put(".*", handler);
    server_.Delete(".*", handler);
    server_.Patch(".*", handler);
    server_.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;  // the service's own error JSON
      const char* message = res.status == 413   ? "the request body exceeds the server's limit"
                            : res.status == 400 ? "the HTTP request is malformed"
                            : res.status == 414 ? "the request URI is too long"
                                                : "the request could not be served";
      const ApiError e(res.status, "invalid_request_error", message);
      res.set_content(dump_json(e.body()), "application/json");
    });
    server_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      res.status = 500;
      res.set_content(dump_json(ApiError(500, "server_error", "internal error").body()), "application/json");
    });
  }

  // Binds the listening socket; returns the port (the one chosen when options.port is 0), or -1.
  int bind() {
    if (options_.port == 0) {
      port_ = server_.bind_to_any_port(options_.host);
    } else {
      port_ = server_.bind_to_port(options_.host, options_.port) ? options_.port : -1;
    }
    if (port_ > 0) raise_listen_backlog(port_);
    return port_;
  }

  // Serves until stop() (blocking). Returns false if the socket failed.
  bool listen() { return server_.listen_after_bind(); }
  void stop() { server_.stop(); }
  bool running() const { return server_.is_running(); }
  int port() const noexcept { return port_; }

 private:
  void serve(const httplib::Request& req, httplib::Response& res) {
    HttpRequest r{req.method, req.path, req.get_header_value("Authorization"), req.body};
    HttpResponse out = service_.handle(r);
    res.status = out.status;
    if (!out.stream) {
      res.set_content(out.body, out.content_type);
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    std::shared_ptr<EventStream> stream = std::move(out.stream);
    res.set_chunked_content_provider(
        "text/event-stream",
        [stream](std::size_t, httplib::DataSink& sink) {
          const auto p = stream->pump([&](std::string_view d) { return sink.write(d.data(), d.size()); },
                                      [&] { return sink.is_writable(); });
          if (p == EventStream::Pump::kDone) sink.done();
          return p != EventStream::Pump::kGone;
        });
    // httplib destroys the provider, and with it the last reference to the stream, when the
    // response ends (written or not): a request still running then is cancelled.
  }

  // httplib 0.11 listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, fixed inside Debian's
  // shared library): 64 clients connecting at once overflow it and the kernel drops their SYNs,
  // which costs them 1 + 2 + ... s of retransmission. Its socket is private, so find it (the
  // listening TCP socket bound to our port) and call listen() again, which on Linux only raises
  // the backlog of a socket that already listens.
  static void raise_listen_backlog(int port) {
    for (int fd = 0; fd < 4096; ++fd) {
      int listening = 0;
      socklen_t len = sizeof(listening);
      if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening == 0) continue;
      sockaddr_storage addr{};
      socklen_t alen = sizeof(addr);
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
      int bound = -1;
      if (addr.ss_family == AF_INET) bound = ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
      if (addr.ss_family == AF_INET6) bound = ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
      if (bound == port) (void)::listen(fd, SOMAXCONN);
    }
  }

  BasicApiService<Backend>& service_;
  HttpOptions options_;
  httplib::Server server_;
  int port_ = -1;
};

}  // namespace moe::server
