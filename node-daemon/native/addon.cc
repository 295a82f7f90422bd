// Entry point of netcube_bpf.node, the native half of node-daemon/src/bpf.
// The TypeScript side (addon.ts) is the only caller; it validates arguments
// and turns the failures described here into its typed errors.
#include "common.h"

namespace nc {

namespace {

Napi::Array TypeNames(Napi::Env env, const char *(*name)(int)) {
  Napi::Array out = Napi::Array::New(env);
  for (int i = 0;; i++) {
    const char *n = name(i);
    if (n == nullptr) break;
    out.Set(i, n);
  }
  return out;
}

// init(makeError) -> { mapTypes, programTypes, possibleCpus }
Napi::Value Init(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  env.GetInstanceData<AddonData>()->makeError = Napi::Persistent(info[0].As<Napi::Function>());
  Napi::Object out = Napi::Object::New(env);
  out.Set("mapTypes", TypeNames(env, [](int t) { return libbpf_bpf_map_type_str(static_cast<enum bpf_map_type>(t)); }));
  out.Set("programTypes",
          TypeNames(env, [](int t) { return libbpf_bpf_prog_type_str(static_cast<enum bpf_prog_type>(t)); }));
  int cpus = libbpf_num_possible_cpus();
  if (cpus < 0) ThrowErrno(env, "count possible CPUs", cpus, "libbpf");
  out.Set("possibleCpus", cpus);
  return out;
}

}  // namespace

Napi::Object Register(Napi::Env env, Napi::Object exports) {
  LibbpfCapture::Install();
  auto *data = new AddonData();
  env.SetInstanceData(data);
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  InitHandle(env, exports, data);
  InitObject(env, exports);
  InitNetns(env, exports);
  InitRingBuffer(env, exports);
  InitProgramCode(env, exports);
  return exports;
}

}  // namespace nc

static Napi::Object RegisterModule(Napi::Env env, Napi::Object exports) { return nc::Register(env, exports); }

NODE_API_MODULE(netcube_bpf, RegisterModule)
