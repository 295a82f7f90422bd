// BpfObject: an opened, not yet loaded bpf_object (a CollectionSpec). Editing
// happens on the main thread; load() hands the object to a pool thread, which
// loads it, dups the fds it keeps and closes the object.
#include "common.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

namespace nc {

namespace {

struct Loaded {
  std::string name;
  int fd;
};

// Everything a load needs, owned by the job once load() starts.
struct LoadState {
  struct bpf_object *obj = nullptr;
  std::unique_ptr<char[]> log;
  std::vector<uint8_t> elf;
  // The kernel's types it relocates against, kept until it is loaded.
  std::shared_ptr<const KernelBtf> kernelBtf;
  std::vector<std::pair<struct bpf_map *, std::string>> mapNames;
  std::vector<Loaded> maps, programs;

  ~LoadState() {
    bpf_object__close(obj);
    for (auto *items : {&maps, &programs}) {
      for (auto &item : *items) {
        if (item.fd >= 0) close(item.fd);
      }
    }
  }
};

// libbpf names internal maps "<object prefix>.rodata"; the section name is
// what users know, and what bpf_object__find_map_by_name resolves.
std::string MapName(struct bpf_object *obj, struct bpf_map *map) {
  const char *name = bpf_map__name(map);
  if (!bpf_map__is_internal(map)) return name;
  const char *dot = strchr(name, '.');
  if (dot != nullptr && bpf_object__find_map_by_name(obj, dot) == map) return dot;
  const struct btf *btf = bpf_object__btf(obj);
  for (__u32 id = 1; btf != nullptr && id < btf__type_cnt(btf); id++) {
    const struct btf_type *t = btf__type_by_id(btf, id);
    if (!btf_is_datasec(t)) continue;
    const char *section = btf__name_by_offset(btf, t->name_off);
    if (bpf_object__find_map_by_name(obj, section) == map) return section;
  }
  return name;
}

// Names the program from libbpf's "prog 'x': BPF program load failed" line.
std::string FailedProgram(const std::string &log) {
  static const std::string marker = "': BPF program load failed";
  size_t end = log.find(marker);
  if (end == std::string::npos) return "";
  size_t start = log.rfind("prog '", end);
  if (start == std::string::npos) return "";
  start += 6;
  return log.substr(start, end - start);
}

}  // namespace

class BpfObjectWrap : public Napi::ObjectWrap<BpfObjectWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit BpfObjectWrap(const Napi::CallbackInfo &info);
  ~BpfObjectWrap() override { Release(); }

 private:
  void Release() {
    state_.reset();
    cleanup_.Remove();
  }
  LoadState &State(Napi::Env env) {
    if (!state_) throw Napi::Error::New(env, label_ + " is closed");
    return *state_;
  }
  struct bpf_map *Map(Napi::Env env, const Napi::Value &name);
  struct bpf_program *Program(Napi::Env env, const Napi::Value &name);

  Napi::Value Describe(const Napi::CallbackInfo &info);
  Napi::Value InitialValue(const Napi::CallbackInfo &info);
  Napi::Value SetInitialValue(const Napi::CallbackInfo &info);
  Napi::Value SetPinPath(const Napi::CallbackInfo &info);
  Napi::Value ReuseMap(const Napi::CallbackInfo &info);
  Napi::Value SetMaxEntries(const Napi::CallbackInfo &info);
  Napi::Value SetAutoload(const Napi::CallbackInfo &info);
  Napi::Value Load(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);

  std::string label_;
  std::unique_ptr<LoadState> state_;
  EnvCleanup cleanup_;
};

Napi::Function BpfObjectWrap::Define(Napi::Env env) {
  return DefineClass(env, "BpfObject",
                     {
                         InstanceMethod<&BpfObjectWrap::Describe>("describe"),
                         InstanceMethod<&BpfObjectWrap::InitialValue>("initialValue"),
                         InstanceMethod<&BpfObjectWrap::SetInitialValue>("setInitialValue"),
                         InstanceMethod<&BpfObjectWrap::SetPinPath>("setPinPath"),
                         InstanceMethod<&BpfObjectWrap::ReuseMap>("reuseMap"),
                         InstanceMethod<&BpfObjectWrap::SetMaxEntries>("setMaxEntries"),
                         InstanceMethod<&BpfObjectWrap::SetAutoload>("setAutoload"),
                         InstanceMethod<&BpfObjectWrap::Load>("load"),
                         InstanceMethod<&BpfObjectWrap::Close>("close"),
                     });
}

// new BpfObject(source: string (path) | Buffer (ELF bytes), name, logSize)
BpfObjectWrap::BpfObjectWrap(const Napi::CallbackInfo &info)
    : Napi::ObjectWrap<BpfObjectWrap>(info), cleanup_(info.Env(), [this] { Release(); }) {
  Napi::Env env = info.Env();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  size_t logSize = info[2].As<Napi::Number>().Uint32Value();
  label_ = "CollectionSpec '" + name + "'";
  auto state = std::make_unique<LoadState>();
  state->log.reset(new char[logSize]);
  state->log[0] = '\0';
  LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name.c_str(), .kernel_log_buf = state->log.get(),
              .kernel_log_size = logSize);
  LibbpfCapture capture;
  auto open = [&] {
    if (info[0].IsString()) return bpf_object__open_file(info[0].As<Napi::String>().Utf8Value().c_str(), &opts);
    return bpf_object__open_mem(state->elf.data(), state->elf.size(), &opts);
  };
  if (!info[0].IsString()) {
    auto buffer = info[0].As<Napi::Buffer<uint8_t>>();
    // libbpf reads the ELF in place; keep our own copy alive with the object.
    state->elf.assign(buffer.Data(), buffer.Data() + buffer.Length());
  }
  state->obj = open();
  // Opened again, now that its BTF says which of the kernel's types it can name.
  if (state->obj != nullptr && (state->kernelBtf = KernelBtfFor(bpf_object__btf(state->obj)))) {
    bpf_object__close(state->obj);
    opts.btf_custom_path = state->kernelBtf->path.c_str();
    state->obj = open();
  }
  if (state->obj == nullptr) ThrowErrno(env, "open", errno, label_, &capture);
  struct bpf_map *map;
  bpf_object__for_each_map(map, state->obj) state->mapNames.emplace_back(map, MapName(state->obj, map));
  state_ = std::move(state);
}

struct bpf_map *BpfObjectWrap::Map(Napi::Env env, const Napi::Value &name) {
  std::string wanted = name.As<Napi::String>().Utf8Value();
  for (auto &entry : State(env).mapNames) {
    if (entry.second == wanted) return entry.first;
  }
  throw Napi::RangeError::New(env, label_ + " has no map '" + wanted + "'");
}

struct bpf_program *BpfObjectWrap::Program(Napi::Env env, const Napi::Value &name) {
  std::string wanted = name.As<Napi::String>().Utf8Value();
  struct bpf_program *prog = bpf_object__find_program_by_name(State(env).obj, wanted.c_str());
  if (prog == nullptr) throw Napi::RangeError::New(env, label_ + " has no program '" + wanted + "'");
  return prog;
}

Napi::Value BpfObjectWrap::Describe(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LoadState &state = State(env);
  const struct btf *btf = bpf_object__btf(state.obj);
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", bpf_object__name(state.obj));

  Napi::Array maps = Napi::Array::New(env);
  for (auto &[map, name] : state.mapNames) {
    Napi::Object m = Napi::Object::New(env);
    enum bpf_map_type type = bpf_map__type(map);
    const char *typeName = libbpf_bpf_map_type_str(type);
    m.Set("name", name);
    m.Set("type", typeName != nullptr ? typeName : "unknown");
    m.Set("typeId", static_cast<double>(type));
    m.Set("keySize", bpf_map__key_size(map));
    m.Set("valueSize", bpf_map__value_size(map));
    m.Set("maxEntries", bpf_map__max_entries(map));
    m.Set("flags", bpf_map__map_flags(map));
    m.Set("internal", bpf_map__is_internal(map));
    m.Set("keyType", BtfTypeToJs(env, btf, bpf_map__btf_key_type_id(map)));
    m.Set("valueType", BtfTypeToJs(env, btf, bpf_map__btf_value_type_id(map)));
    maps.Set(maps.Length(), m);
  }
  out.Set("maps", maps);

  Napi::Array programs = Napi::Array::New(env);
  struct bpf_program *prog;
  bpf_object__for_each_program(prog, state.obj) {
    Napi::Object p = Napi::Object::New(env);
    enum bpf_prog_type type = bpf_program__type(prog);
    const char *typeName = libbpf_bpf_prog_type_str(type);
    p.Set("name", bpf_program__name(prog));
    p.Set("section", bpf_program__section_name(prog));
    p.Set("type", typeName != nullptr ? typeName : "unknown");
    p.Set("autoload", bpf_program__autoload(prog));
    programs.Set(programs.Length(), p);
  }
  out.Set("programs", programs);

  // Globals live in the DATASECs of .rodata/.data/.bss (and .data.*/.rodata.*),
  // each backed by an internal map whose initial value we may still edit.
  Napi::Array variables = Napi::Array::New(env);
  for (__u32 id = 1; btf != nullptr && id < btf__type_cnt(btf); id++) {
    const struct btf_type *sec = btf__type_by_id(btf, id);
    if (!btf_is_datasec(sec)) continue;
    const char *section = btf__name_by_offset(btf, sec->name_off);
    if (strcmp(section, ".kconfig") == 0 || strcmp(section, ".ksyms") == 0) continue;
    if (bpf_object__find_map_by_name(state.obj, section) == nullptr) continue;
    const struct btf_var_secinfo *vsi = btf_var_secinfos(sec);
    for (__u16 i = 0; i < btf_vlen(sec); i++, vsi++) {
      const struct btf_type *var = btf__type_by_id(btf, vsi->type);
      if (!btf_is_var(var)) continue;
      Napi::Value type = BtfTypeToJs(env, btf, var->type);
      if (type.IsUndefined()) continue;
      Napi::Object v = Napi::Object::New(env);
      v.Set("name", btf__name_by_offset(btf, var->name_off));
      v.Set("section", section);
      v.Set("offset", vsi->offset);
      v.Set("size", vsi->size);
      v.Set("type", type);
      variables.Set(variables.Length(), v);
    }
  }
  out.Set("variables", variables);
  return out;
}

Napi::Value BpfObjectWrap::InitialValue(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  size_t size = 0;
  const void *data = bpf_map__initial_value(Map(env, info[0]), &size);
  if (data == nullptr) return env.Undefined();
  return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t *>(data), size);
}

// setInitialValue(section, offset, bytes): libbpf keeps the initial contents
// of internal maps in writable memory until load; writing there is how
// `const volatile` configuration reaches the verifier.
Napi::Value BpfObjectWrap::SetInitialValue(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_map *map = Map(env, info[0]);
  size_t offset = info[1].As<Napi::Number>().Uint32Value();
  auto bytes = info[2].As<Napi::Buffer<uint8_t>>();
  size_t size = 0;
  void *data = const_cast<void *>(bpf_map__initial_value(map, &size));
  if (data == nullptr || offset + bytes.Length() > size) {
    throw Napi::RangeError::New(env, "bytes " + std::to_string(offset) + ".." +
                                         std::to_string(offset + bytes.Length()) + " are outside map '" +
                                         info[0].As<Napi::String>().Utf8Value() + "'");
  }
  memcpy(static_cast<uint8_t *>(data) + offset, bytes.Data(), bytes.Length());
  return env.Undefined();
}

Napi::Value BpfObjectWrap::SetPinPath(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_map *map = Map(env, info[0]);
  std::string path = StringOr(info[1], "");
  LibbpfCapture capture;
  if (int err = bpf_map__set_pin_path(map, path.empty() ? nullptr : path.c_str())) {
    ThrowErrno(env, "set pin path", err, label_, &capture);
  }
  return env.Undefined();
}

Napi::Value BpfObjectWrap::ReuseMap(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_map *map = Map(env, info[0]);
  int fd = MapFd(info[1]);
  LibbpfCapture capture;
  if (int err = bpf_map__reuse_fd(map, fd)) ThrowErrno(env, "reuse map fd", err, label_, &capture);
  return env.Undefined();
}

Napi::Value BpfObjectWrap::SetMaxEntries(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_map *map = Map(env, info[0]);
  if (int err = bpf_map__set_max_entries(map, info[1].As<Napi::Number>().Uint32Value())) {
    ThrowErrno(env, "set max entries", err, label_);
  }
  return env.Undefined();
}

Napi::Value BpfObjectWrap::SetAutoload(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_program *prog = Program(env, info[0]);
  if (int err = bpf_program__set_autoload(prog, info[1].As<Napi::Boolean>().Value())) {
    ThrowErrno(env, "set autoload", err, label_);
  }
  return env.Undefined();
}

// load(logLevel) -> Promise<{ maps: {name, handle}[], programs: {name, handle}[] }>
Napi::Value BpfObjectWrap::Load(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  State(env);
  __u32 logLevel = info[0].As<Napi::Number>().Uint32Value();
  std::shared_ptr<LoadState> state(state_.release());
  cleanup_.Remove();

  return Job::Start(
      env, label_,
      [state, logLevel](Failure &failure) {
        struct bpf_program *prog;
        if (logLevel != 0) {
          bpf_object__for_each_program(prog, state->obj) bpf_program__set_log_level(prog, logLevel);
        }
        LibbpfCapture capture;
        int err = bpf_object__load(state->obj);
        if (err) {
          failure.Set("load", err);
          failure.log = capture.Take();
          // libbpf retried the failed program with log level 1 into our buffer.
          failure.program = FailedProgram(failure.log);
          if (!failure.program.empty() && state->log[0] != '\0') failure.verifierLog = state->log.get();
          return;
        }
        // Our own fds, so the maps and programs outlive the bpf_object.
        for (auto &[map, name] : state->mapNames) {
          int fd = fcntl(bpf_map__fd(map), F_DUPFD_CLOEXEC, 0);
          if (fd < 0) return failure.Set("dup map fd", errno);
          state->maps.push_back({name, fd});
        }
        bpf_object__for_each_program(prog, state->obj) {
          if (bpf_program__fd(prog) < 0) continue;
          int fd = fcntl(bpf_program__fd(prog), F_DUPFD_CLOEXEC, 0);
          if (fd < 0) return failure.Set("dup program fd", errno);
          state->programs.push_back({bpf_program__name(prog), fd});
        }
        bpf_object__close(state->obj);
        state->obj = nullptr;
      },
      [state](Napi::Env env) -> Napi::Value {
        auto toArray = [&](std::vector<Loaded> &items, HandleKind kind) {
          Napi::Array out = Napi::Array::New(env, items.size());
          for (size_t i = 0; i < items.size(); i++) {
            Napi::Object entry = Napi::Object::New(env);
            entry.Set("name", items[i].name);
            entry.Set("handle", NewHandle(env, kind, items[i].fd));
            items[i].fd = -1;  // owned by the handle now
            out.Set(i, entry);
          }
          return out;
        };
        Napi::Object out = Napi::Object::New(env);
        out.Set("maps", toArray(state->maps, HandleKind::Map));
        out.Set("programs", toArray(state->programs, HandleKind::Program));
        return out;
      });
}

Napi::Value BpfObjectWrap::Close(const Napi::CallbackInfo &info) {
  Release();
  return info.Env().Undefined();
}

void InitObject(Napi::Env env, Napi::Object exports) {
  exports.Set("BpfObject", BpfObjectWrap::Define(env));
}

}  // namespace nc
