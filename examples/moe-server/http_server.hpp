// moe-server's HTTP layer: cpp-httplib in front of moe::server::BasicApiService. It copies each
// request in (method, path, Authorization, body), the service's answer out, and pumps SSE
// streams through httplib's chunked content provider; a failed write or a dead socket ends the
// stream and, by dropping the EventStream, cancels the request's sequences. Shared by main.cpp
// and the loopback tests (tests/server).
#pragma once

#include <moe/server/service.hpp>

#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
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

// Whether the client of one request is still connected. httplib 0.11 hands a handler no view
// of its socket, only the connection's addresses; the socket is the open descriptor whose local
// and peer addresses are those (found in /proc/self/fd on the first ask; httplib keeps it open
// while the handler runs). The client has gone when poll() reports a hang-up or that the peer
// shut its side (POLLRDHUP); bytes waiting (a pipelined request) do not count as gone. Reports
// connected when the socket cannot be found.
class ConnectionProbe {
 public:
  ConnectionProbe(std::string local_addr, int local_port, std::string remote_addr, int remote_port)
      : local_addr_(std::move(local_addr)), remote_addr_(std::move(remote_addr)), local_port_(local_port),
        remote_port_(remote_port) {}

  bool connected() {
    if (fd_ == -2) fd_ = find_socket();
    if (fd_ < 0) return true;
    pollfd p{fd_, static_cast<short>(POLLIN | POLLRDHUP), 0};
    if (::poll(&p, 1, 0) <= 0) return true;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) == 0;
  }

 private:
  static bool same(const sockaddr_storage& a, const std::string& addr, int port) {
    char text[INET6_ADDRSTRLEN] = {};
    int p = -1;
    if (a.ss_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&a);
      ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
      p = ntohs(in->sin_port);
    } else if (a.ss_family == AF_INET6) {
      const auto* in = reinterpret_cast<const sockaddr_in6*>(&a);
      ::inet_ntop(AF_INET6, &in->sin6_addr, text, sizeof(text));
      p = ntohs(in->sin6_port);
    }
    std::string_view t(text), want(addr);
    for (std::string_view* v : {&t, &want}) {
      if (v->substr(0, 7) == "::ffff:") v->remove_prefix(7);  // IPv4-mapped
    }
    return p == port && t == want;
  }

  int find_socket() const {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
      int fd = -1;
      try {
        fd = std::stoi(entry.path().filename().string());
      } catch (const std::exception&) {
        continue;
      }
      sockaddr_storage local{}, peer{};
      socklen_t ll = sizeof(local), pl = sizeof(peer);
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0) continue;
      if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0) continue;
      if (same(local, local_addr_, local_port_) && same(peer, remote_addr_, remote_port_)) return fd;
    }
    return -1;
  }

  std::string local_addr_, remote_addr_;
  int local_port_, remote_port_;
  int fd_ = -2;  // -2: not looked for yet; -1: not found
};

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
    auto probe = std::make_shared<ConnectionProbe>(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
    HttpRequest r{req.method, req.path, req.get_header_value("Authorization"), req.body,
                  [probe] { return probe->connected(); }};
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
