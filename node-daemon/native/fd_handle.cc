// What the handle kinds share (fd_handle.h): their type tags, making a handle of
// a kind, and objGet, which opens a pinned object and hands back the handle of
// whatever kind it turns out to be.
#include "fd_handle.h"

#include <cerrno>

namespace nc {

namespace {

// Random, fixed: they only have to differ from each other and from every other
// addon's tags.
const napi_type_tag kTags[kHandleKinds] = {
    {0x6e63b7f1e2a94d01ULL, 0x8f3c5a1e7d2b4c61ULL},  // map
    {0x6e63b7f1e2a94d02ULL, 0x1a9e6c3f5b7d2e82ULL},  // program
    {0x6e63b7f1e2a94d03ULL, 0x4d2b8e7a1c6f3a93ULL},  // link
    {0x6e63b7f1e2a94d04ULL, 0x7c1f4a9d3e8b5d14ULL},  // socket
};

// What kind of BPF object an fd is, as /proc names its anonymous inode.
const char *BpfKind(int fd, HandleKind *kind) {
  char path[64];
  char target[64] = {};
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, target, sizeof(target) - 1);
  std::string link(target, n < 0 ? 0 : n);
  if (link == "anon_inode:bpf-map") return *kind = HandleKind::Map, "map";
  if (link == "anon_inode:bpf-prog") return *kind = HandleKind::Program, "program";
  // A new link is "bpf_link", one reopened from its pin "bpf-link".
  if (link == "anon_inode:bpf_link" || link == "anon_inode:bpf-link") return *kind = HandleKind::Link, "link";
  return nullptr;
}

// objGet(path) -> a map, program or link handle, as the pinned object is.
Napi::Value ObjGet(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(env, "open pinned object", fd, "'" + path + "'");
  HandleKind kind;
  if (BpfKind(fd, &kind) == nullptr) {
    close(fd);
    throw Napi::TypeError::New(env, "'" + path + "' is a pinned BPF object that is neither a map, a program nor a link");
  }
  return NewHandle(env, kind, fd);
}

}  // namespace

const napi_type_tag &HandleTag(HandleKind kind) { return kTags[static_cast<int>(kind)]; }

Napi::Object NewHandle(Napi::Env env, HandleKind kind, int fd) {
  return env.GetInstanceData<AddonData>()->handles[static_cast<int>(kind)].New({Napi::Number::New(env, fd)});
}

void InitHandles(Napi::Env env, Napi::Object exports) {
  exports.Set("objGet", Napi::Function::New(env, ObjGet, "objGet"));
}

}  // namespace nc
