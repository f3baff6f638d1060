// Whether the client of a request answered in one piece (not streamed) is still connected, so
// that a client leaving during a long non-streamed completion frees its sequence at once, as a
// stream's failed write does. cpp-httplib 0.11 gives a handler no access to its connection's
// socket, so the probe finds it: the socket of this process whose local port and peer address and
// port are the request's (a TCP connection is unique by them; the handler runs on the connection's
// thread, so the socket stays open while it is probed). It then asks the kernel, without reading,
// whether the peer has hung up (POLLRDHUP / POLLHUP / POLLERR). A client that shuts down only its
// sending side while still waiting for the answer (not what HTTP clients do) is taken as gone.
#pragma once

#include <httplib.h>

namespace wkvq::serve {

class ClientProbe {
 public:
  explicit ClientProbe(const httplib::Request& req);
  // False when no socket matched (then gone() is always false: the request runs to its end).
  bool found() const { return fd_ >= 0; }
  bool gone() const;

 private:
  int fd_ = -1;
};

}  // namespace wkvq::serve
