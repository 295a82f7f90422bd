// Namespace-bound operations: interface lookup, XDP links and clsact TC
// filters. Each runs as a Job; with a netns path it runs on a thread of its
// own inside that namespace (RunInNetns), because ifindexes and the netlink
// socket libbpf opens for TC resolve in the calling thread's namespace.
#include "common.h"

#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

namespace nc {

namespace {

// An interface by name, or by the ifindex an earlier call resolved.
struct Interface {
  std::string name;
  int index = 0;
  std::string netns;

  Interface(const Napi::Value &target, const Napi::Value &netnsPath) : netns(StringOr(netnsPath, "")) {
    if (target.IsNumber()) {
      index = target.As<Napi::Number>().Int32Value();
      name = "#" + std::to_string(index);
    } else {
      name = target.As<Napi::String>().Utf8Value();
    }
  }

  std::string Label() const { return "interface '" + name + "'" + (netns.empty() ? "" : " in " + netns); }

  // Runs on the namespace thread.
  bool Resolve(Failure &failure) {
    if (index != 0) return true;
    index = if_nametoindex(name.c_str());
    if (index == 0) failure.Set("find interface", errno);
    return index != 0;
  }
};

int DupFd(Napi::Env env, const Napi::Value &handle) {
  int fd = fcntl(ProgramFd(handle), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "dup", errno, "program");
  return fd;
}

struct OwnedFd {
  int fd = -1;
  ~OwnedFd() {
    if (fd >= 0) close(fd);
  }
};

// ifindex(ifname, netns)
Napi::Value Ifindex(const Napi::CallbackInfo &info) {
  auto iface = std::make_shared<Interface>(info[0], info[1]);
  return Job::Start(
      info.Env(), iface->Label(),
      [iface](Failure &failure) { RunInNetns(iface->netns, failure, [&](Failure &f) { iface->Resolve(f); }); },
      [iface](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, iface->index); });
}

// xdpAttach(program handle, ifname, netns, mode 'native' | 'generic')
//   -> Promise<{ handle, ifindex }>
Napi::Value XdpAttach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct State {
    OwnedFd prog, link;
    __u32 flags = 0;
  };
  auto iface = std::make_shared<Interface>(info[1], info[2]);
  auto state = std::make_shared<State>();
  state->prog.fd = DupFd(env, info[0]);
  state->flags = info[3].As<Napi::String>().Utf8Value() == "generic" ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
  return Job::Start(
      env, iface->Label(),
      [iface, state](Failure &failure) {
        RunInNetns(iface->netns, failure, [&](Failure &f) {
          if (!iface->Resolve(f)) return;
          LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = state->flags);
          int fd = bpf_link_create(state->prog.fd, iface->index, BPF_XDP, &opts);
          if (fd < 0) return f.Set("attach XDP", fd);
          state->link.fd = fd;
        });
      },
      [iface, state](Napi::Env env) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("handle", NewHandle(env, HandleKind::Link, state->link.fd));
        state->link.fd = -1;
        out.Set("ifindex", iface->index);
        return out;
      });
}

struct TcRequest {
  Interface iface;
  bool ingress;
  __u32 priority;
  __u32 handle;

  TcRequest(const Napi::CallbackInfo &info, size_t at)
      : iface(info[at], info[at + 1]),
        ingress(info[at + 2].As<Napi::String>().Utf8Value() == "ingress"),
        priority(info[at + 3].As<Napi::Number>().Uint32Value()),
        handle(info[at + 4].As<Napi::Number>().Uint32Value()) {}

  std::string Label() const {
    return std::string("TC ") + (ingress ? "ingress" : "egress") + " of " + iface.Label();
  }

  struct bpf_tc_hook Hook() const {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = iface.index,
                .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
    return hook;
  }
};

Napi::Object TcResult(Napi::Env env, const TcRequest &req, __u32 programId) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("ifindex", req.iface.index);
  out.Set("priority", req.priority);
  out.Set("handle", req.handle);
  out.Set("programId", programId);
  return out;
}

// tcAttach(program handle, replace, ifname | ifindex, netns, direction, priority, handle)
//   -> Promise<{ ifindex, priority, handle, programId }>
// A zero priority or handle lets the kernel choose; the result has the real ones.
Napi::Value TcAttach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct State {
    OwnedFd prog;
    bool replace;
    __u32 programId = 0;
  };
  auto req = std::make_shared<TcRequest>(info, 2);
  auto state = std::make_shared<State>();
  state->prog.fd = DupFd(env, info[0]);
  state->replace = info[1].As<Napi::Boolean>().Value();
  return Job::Start(
      env, req->Label(),
      [req, state](Failure &failure) {
        RunInNetns(req->iface.netns, failure, [&](Failure &f) {
          if (!req->iface.Resolve(f)) return;
          struct bpf_tc_hook hook = req->Hook();
          // The clsact qdisc is shared by every filter on the interface.
          int err = bpf_tc_hook_create(&hook);
          if (err && err != -EEXIST) return f.Set("create clsact qdisc", err);
          LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = state->prog.fd,
                      .flags = state->replace ? static_cast<__u32>(BPF_TC_F_REPLACE) : 0u, .handle = req->handle,
                      .priority = req->priority);
          err = bpf_tc_attach(&hook, &opts);
          if (err) return f.Set(state->replace ? "replace TC filter" : "attach TC filter", err);
          req->handle = opts.handle;
          req->priority = opts.priority;
          state->programId = opts.prog_id;
        });
      },
      [req, state](Napi::Env env) -> Napi::Value { return TcResult(env, *req, state->programId); });
}

// tcDetach(ifname | ifindex, netns, direction, priority, handle) -> Promise<void>
Napi::Value TcDetach(const Napi::CallbackInfo &info) {
  auto req = std::make_shared<TcRequest>(info, 0);
  return Job::Start(
      info.Env(), req->Label(),
      [req](Failure &failure) {
        RunInNetns(req->iface.netns, failure, [&](Failure &f) {
          if (!req->iface.Resolve(f)) return;
          struct bpf_tc_hook hook = req->Hook();
          LIBBPF_OPTS(bpf_tc_opts, opts, .handle = req->handle, .priority = req->priority);
          if (int err = bpf_tc_detach(&hook, &opts)) f.Set("detach TC filter", err);
        });
      },
      [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
}

// tcQuery(ifname | ifindex, netns, direction, priority, handle)
//   -> Promise<{ ifindex, priority, handle, programId } | null>
Napi::Value TcQuery(const Napi::CallbackInfo &info) {
  auto req = std::make_shared<TcRequest>(info, 0);
  auto programId = std::make_shared<__u32>(0);
  return Job::Start(
      info.Env(), req->Label(),
      [req, programId](Failure &failure) {
        RunInNetns(req->iface.netns, failure, [&](Failure &f) {
          if (!req->iface.Resolve(f)) return;
          struct bpf_tc_hook hook = req->Hook();
          LIBBPF_OPTS(bpf_tc_opts, opts, .handle = req->handle, .priority = req->priority);
          int err = bpf_tc_query(&hook, &opts);
          // No such filter (or no clsact qdisc at all) is an answer, not a failure.
          if (err == -ENOENT || err == -EINVAL) return;
          if (err) return f.Set("query TC filter", err);
          *programId = opts.prog_id;
        });
      },
      [req, programId](Napi::Env env) -> Napi::Value {
        if (*programId == 0) return env.Null();
        return TcResult(env, *req, *programId);
      });
}

// packetSocket(ifname, netns) -> Promise<{ handle, ifindex }>: a raw AF_PACKET
// socket bound to the interface, for sending frames out of it (packet-out). It is
// opened on the namespace thread; a socket keeps the namespace it was made in, so
// Node's thread can send on it afterwards. Protocol 0: it never receives.
Napi::Value PacketSocket(const Napi::CallbackInfo &info) {
  auto iface = std::make_shared<Interface>(info[0], info[1]);
  auto sock = std::make_shared<OwnedFd>();
  return Job::Start(
      info.Env(), iface->Label(),
      [iface, sock](Failure &failure) {
        RunInNetns(iface->netns, failure, [&](Failure &f) {
          if (!iface->Resolve(f)) return;
          int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
          if (fd < 0) return f.Set("open packet socket", errno);
          sock->fd = fd;
          struct sockaddr_ll addr = {};
          addr.sll_family = AF_PACKET;
          addr.sll_ifindex = iface->index;
          if (bind(fd, reinterpret_cast<struct sockaddr *>(&addr), sizeof(addr)) < 0) f.Set("bind packet socket", errno);
        });
      },
      [iface, sock](Napi::Env env) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("handle", NewHandle(env, HandleKind::Socket, sock->fd));
        sock->fd = -1;
        out.Set("ifindex", iface->index);
        return out;
      });
}

}  // namespace

void InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("ifindex", Napi::Function::New(env, Ifindex, "ifindex"));
  exports.Set("xdpAttach", Napi::Function::New(env, XdpAttach, "xdpAttach"));
  exports.Set("tcAttach", Napi::Function::New(env, TcAttach, "tcAttach"));
  exports.Set("tcDetach", Napi::Function::New(env, TcDetach, "tcDetach"));
  exports.Set("tcQuery", Napi::Function::New(env, TcQuery, "tcQuery"));
  exports.Set("packetSocket", Napi::Function::New(env, PacketSocket, "packetSocket"));
}

}  // namespace nc
