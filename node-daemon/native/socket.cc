// SocketHandle: a packet socket's fd (packet-out, see netns.cc's packetSocket),
// and packetSend, a plain function of the fd for the same reason as the map's
// per-element operations (map.cc).
#include "fd_handle.h"

#include <sys/socket.h>

#include <cerrno>

namespace nc {

class SocketHandle : public FdHandle<SocketHandle> {
 public:
  static constexpr HandleKind kKind = HandleKind::Socket;
  static Napi::Function Define(Napi::Env env) { return DefineClass(env, "SocketHandle", Common(false)); }
  explicit SocketHandle(const Napi::CallbackInfo &info) : FdHandle(info) {}
};

namespace {

// packetSend(fd, frame, label) -> sent: one frame out of a packet socket; false
// when the device queue is full (the socket is non-blocking), so the caller can
// count a drop instead of waiting.
Napi::Value PacketSend(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Bytes frame = GetBytes(env, info[1], "frame");
  if (send(info[0].As<Napi::Number>().Int32Value(), frame.data, frame.length, 0) < 0) {
    if (errno == EAGAIN || errno == ENOBUFS) return Napi::Boolean::New(env, false);
    ThrowErrno(env, "send", errno, info[2].As<Napi::String>());
  }
  return Napi::Boolean::New(env, true);
}

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports, AddonData *data) {
  data->handles[static_cast<int>(HandleKind::Socket)] = Napi::Persistent(SocketHandle::Define(env));
  exports.Set("packetSend", Napi::Function::New(env, PacketSend, "packetSend"));
}

}  // namespace nc
