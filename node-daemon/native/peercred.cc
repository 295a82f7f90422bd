// Who is at the other end of a unix socket: the kernel's SO_PEERCRED, the pid,
// uid and gid of the process that connected, as of connect(). netcubed's API
// tells root from the viewer group on its unix socket by it (src/api/peer.ts).
#include "common.h"

#include <sys/socket.h>

#include <cerrno>

namespace nc {

namespace {

// peerCredentials(fd) -> { pid, uid, gid }
Napi::Value PeerCredentials(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct ucred cred = {};
  socklen_t len = sizeof(cred);
  if (getsockopt(info[0].As<Napi::Number>().Int32Value(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    ThrowErrno(env, "getsockopt(SO_PEERCRED)", errno, "socket");
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", static_cast<double>(cred.pid));
  out.Set("uid", static_cast<double>(cred.uid));
  out.Set("gid", static_cast<double>(cred.gid));
  return out;
}

}  // namespace

void InitPeerCred(Napi::Env env, Napi::Object exports) {
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
}

}  // namespace nc
