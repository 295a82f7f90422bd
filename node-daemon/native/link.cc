// LinkHandle: a BPF link's fd (an XDP attachment here): its info, an atomic
// swap of its program, and detaching it whoever else holds it.
#include "fd_handle.h"

namespace nc {

class LinkHandle : public FdHandle<LinkHandle> {
 public:
  static constexpr HandleKind kKind = HandleKind::Link;
  static Napi::Function Define(Napi::Env env);
  explicit LinkHandle(const Napi::CallbackInfo &info) : FdHandle(info) {}

 private:
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value Update(const Napi::CallbackInfo &info);
  Napi::Value Detach(const Napi::CallbackInfo &info);
};

Napi::Function LinkHandle::Define(Napi::Env env) {
  auto props = Common(true);
  props.push_back(InstanceMethod<&LinkHandle::Info>("info"));
  props.push_back(InstanceMethod<&LinkHandle::Update>("update"));
  props.push_back(InstanceMethod<&LinkHandle::Detach>("detach"));
  return DefineClass(env, "LinkHandle", props);
}

Napi::Value LinkHandle::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_link_info l = {};
  __u32 len = sizeof(l);
  if (int err = bpf_obj_get_info_by_fd(Fd(env), &l, &len)) Fail(env, "link info", err);
  const char *type = libbpf_bpf_link_type_str(static_cast<enum bpf_link_type>(l.type));
  Napi::Object out = Napi::Object::New(env);
  out.Set("kind", "link");
  out.Set("type", type != nullptr ? std::string(type) : "unknown(" + std::to_string(l.type) + ")");
  out.Set("id", l.id);
  out.Set("programId", l.prog_id);
  if (l.type == BPF_LINK_TYPE_XDP) out.Set("ifindex", l.xdp.ifindex);
  return out;
}

// update(program): bpf_link_update, an atomic swap of the program.
Napi::Value LinkHandle::Update(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int progFd = ProgramFd(info[0]);
  if (int err = bpf_link_update(Fd(env), progFd, nullptr)) Fail(env, "link update", err);
  return env.Undefined();
}

// detach(): BPF_LINK_DETACH, off its hook now, whoever else holds the link.
// Dropping the last reference detaches too, but the one a pin holds is dropped
// only after an RCU grace period, so a re-attach right after unlinking the pin
// can find the hook still taken.
Napi::Value LinkHandle::Detach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (int err = bpf_link_detach(Fd(env))) Fail(env, "link detach", err);
  return env.Undefined();
}

void InitLink(Napi::Env env, Napi::Object, AddonData *data) {
  data->handles[static_cast<int>(HandleKind::Link)] = Napi::Persistent(LinkHandle::Define(env));
}

}  // namespace nc
