// MapHandle: a BPF map's fd, with what JavaScript does with a map besides the
// per-element operations: info, batches, the 8-byte atomic slots of an
// mmap'able array, the BTF of its key and value. The per-element operations
// (mapLookup, mapUpdate, mapDelete, mapNextKey) are plain functions of the fd,
// and mapCreate makes a map.
#include "fd_handle.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace nc {

namespace {

// Kernel-internal "operation not supported", returned for batch operations a
// map type lacks; user space headers do not define it.
constexpr int kENOTSUPP = 524;

bool IsPerCpu(__u32 type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

std::string TypeName(const char *name, __u32 type) {
  return name != nullptr ? name : "unknown(" + std::to_string(type) + ")";
}

}  // namespace

class MapHandle : public FdHandle<MapHandle> {
 public:
  static constexpr HandleKind kKind = HandleKind::Map;
  static Napi::Function Define(Napi::Env env);
  explicit MapHandle(const Napi::CallbackInfo &info) : FdHandle(info) {}
  ~MapHandle() override { OnRelease(); }

  // Unmaps what Slot() mapped; run before the fd is closed.
  void OnRelease() {
    if (mapped_ != nullptr) {
      munmap(mapped_, mappedSize_);
      mapped_ = nullptr;
    }
  }

 private:
  // Key and value sizes as the kernel sees them, fetched once: the native
  // side checks buffer lengths itself so a bypassed TypeScript check can
  // never make the kernel read past a buffer.
  struct MapLayout {
    __u32 type = 0;
    __u32 keySize = 0;
    __u32 valueBytes = 0;  // per-CPU maps: every CPU's slot
    __u32 maxEntries = 0;
    __u32 flags = 0;
  };

  const MapLayout &Layout(Napi::Env env);
  void Check(Napi::Env env, const Bytes &bytes, size_t expected, const char *what) const;
  __u64 *Slot(Napi::Env env, uint32_t index);

  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value LookupBatch(const Napi::CallbackInfo &info);
  Napi::Value UpdateBatch(const Napi::CallbackInfo &info);
  Napi::Value DeleteBatch(const Napi::CallbackInfo &info);
  Napi::Value StoreU64(const Napi::CallbackInfo &info);
  Napi::Value LoadU64(const Napi::CallbackInfo &info);
  Napi::Value BtfTypes(const Napi::CallbackInfo &info);

  std::unique_ptr<MapLayout> layout_;
  void *mapped_ = nullptr;
  size_t mappedSize_ = 0;
  bool noUpdateBatch_ = false;
  bool noDeleteBatch_ = false;
};

Napi::Function MapHandle::Define(Napi::Env env) {
  auto props = Common(true);
  for (auto p : {InstanceMethod<&MapHandle::Info>("info"), InstanceMethod<&MapHandle::LookupBatch>("lookupBatch"),
                 InstanceMethod<&MapHandle::UpdateBatch>("updateBatch"),
                 InstanceMethod<&MapHandle::DeleteBatch>("deleteBatch"),
                 InstanceMethod<&MapHandle::StoreU64>("storeU64"), InstanceMethod<&MapHandle::LoadU64>("loadU64"),
                 InstanceMethod<&MapHandle::BtfTypes>("btfTypes")}) {
    props.push_back(p);
  }
  return DefineClass(env, "MapHandle", props);
}

const MapHandle::MapLayout &MapHandle::Layout(Napi::Env env) {
  int fd = Fd(env);
  if (layout_) return *layout_;
  struct bpf_map_info info = {};
  __u32 len = sizeof(info);
  int err = bpf_obj_get_info_by_fd(fd, &info, &len);
  if (err) Fail(env, "map info", err);
  auto layout = std::make_unique<MapLayout>();
  layout->type = info.type;
  layout->keySize = info.key_size;
  layout->valueBytes = info.value_size;
  if (IsPerCpu(info.type)) {
    int cpus = libbpf_num_possible_cpus();
    if (cpus < 0) Fail(env, "count possible CPUs", cpus);
    layout->valueBytes = ((info.value_size + 7) / 8 * 8) * cpus;
  }
  layout->maxEntries = info.max_entries;
  layout->flags = info.map_flags;
  layout_ = std::move(layout);
  return *layout_;
}

void MapHandle::Check(Napi::Env env, const Bytes &bytes, size_t expected, const char *what) const {
  if (bytes.length != expected) {
    throw Napi::RangeError::New(env, std::string(what) + " of " + label_ + " is " + std::to_string(bytes.length) +
                                         " bytes, expected " + std::to_string(expected));
  }
}

Napi::Value MapHandle::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_map_info m = {};
  __u32 len = sizeof(m);
  if (int err = bpf_obj_get_info_by_fd(Fd(env), &m, &len)) Fail(env, "map info", err);
  Napi::Object out = Napi::Object::New(env);
  out.Set("kind", "map");
  out.Set("type", TypeName(libbpf_bpf_map_type_str(static_cast<enum bpf_map_type>(m.type)), m.type));
  out.Set("id", m.id);
  out.Set("name", m.name);
  out.Set("keySize", m.key_size);
  out.Set("valueSize", m.value_size);
  out.Set("maxEntries", m.max_entries);
  out.Set("flags", m.map_flags);
  out.Set("btfId", m.btf_id);
  return out;
}

// BPF_MAP_LOOKUP_BATCH over the whole map in chunks; map types without batch
// support are walked with get_next_key + lookup instead.
Napi::Value MapHandle::LookupBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const MapLayout layout = Layout(env);
  __u32 chunk = std::max(1u, info[0].As<Napi::Number>().Uint32Value());
  const size_t ks = layout.keySize, vs = layout.valueBytes;
  std::vector<uint8_t> keys, values;
  std::vector<uint8_t> tokenIn(std::max<size_t>(ks, 8)), tokenOut(tokenIn.size());
  size_t count = 0;
  bool first = true, batched = true;
  for (;;) {
    keys.resize((count + chunk) * ks);
    values.resize((count + chunk) * vs);
    __u32 n = chunk;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_lookup_batch(fd_, first ? nullptr : tokenIn.data(), tokenOut.data(),
                                   keys.data() + count * ks, values.data() + count * vs, &n, &opts);
    if (err == 0) {
      count += n;
      tokenIn.swap(tokenOut);
      first = false;
      continue;
    }
    if (err == -ENOENT) {
      count += n;
      break;
    }
    // A hash bucket holds more entries than fit in one chunk.
    if (err == -ENOSPC && n == 0 && chunk < (1u << 24)) {
      chunk *= 2;
      continue;
    }
    if (first && (err == -EINVAL || err == -kENOTSUPP || err == -EOPNOTSUPP)) {
      batched = false;
      break;
    }
    Fail(env, "lookup batch", err);
  }
  if (!batched) {
    count = 0;
    std::vector<uint8_t> key(ks);
    bool have = false;
    for (;;) {
      keys.resize((count + 1) * ks);
      values.resize((count + 1) * vs);
      int err = bpf_map_get_next_key(fd_, have ? key.data() : nullptr, keys.data() + count * ks);
      if (err == -ENOENT) break;
      if (err) Fail(env, "next key", err);
      memcpy(key.data(), keys.data() + count * ks, ks);
      have = true;
      err = bpf_map_lookup_elem(fd_, key.data(), values.data() + count * vs);
      if (err == -ENOENT) continue;  // an empty prog array slot, or deleted meanwhile
      if (err) Fail(env, "lookup", err);
      count++;
    }
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("count", static_cast<double>(count));
  out.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), count * ks));
  out.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), count * vs));
  return out;
}

Napi::Value MapHandle::UpdateBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const MapLayout &layout = Layout(env);
  Bytes keys = GetBytes(env, info[0], "keys");
  Bytes values = GetBytes(env, info[1], "values");
  __u32 count = info[2].As<Napi::Number>().Uint32Value();
  __u64 flags = info[3].As<Napi::Number>().Uint32Value();
  Check(env, keys, size_t(count) * layout.keySize, "keys");
  Check(env, values, size_t(count) * layout.valueBytes, "values");
  if (!noUpdateBatch_) {
    __u32 n = count;
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
    int err = bpf_map_update_batch(fd_, keys.data, values.data, &n, &opts);
    if (err == 0) return Napi::Number::New(env, n);
    if (err == -kENOTSUPP || err == -EOPNOTSUPP) {
      noUpdateBatch_ = true;
    } else if (!(err == -EINVAL && n == 0)) {
      std::string op = "update batch (stopped after " + std::to_string(n) + " of " + std::to_string(count) + ")";
      Fail(env, op.c_str(), err);
    }
  }
  for (__u32 i = 0; i < count; i++) {
    int err = bpf_map_update_elem(fd_, keys.data + size_t(i) * layout.keySize,
                                  values.data + size_t(i) * layout.valueBytes, flags);
    if (err) {
      std::string op = "update batch (stopped after " + std::to_string(i) + " of " + std::to_string(count) + ")";
      Fail(env, op.c_str(), err);
    }
  }
  return Napi::Number::New(env, count);
}

Napi::Value MapHandle::DeleteBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const MapLayout &layout = Layout(env);
  Bytes keys = GetBytes(env, info[0], "keys");
  __u32 count = info[1].As<Napi::Number>().Uint32Value();
  Check(env, keys, size_t(count) * layout.keySize, "keys");
  if (!noDeleteBatch_) {
    __u32 n = count;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_delete_batch(fd_, keys.data, &n, &opts);
    if (err == 0) return Napi::Number::New(env, n);
    if (err == -kENOTSUPP || err == -EOPNOTSUPP) {
      noDeleteBatch_ = true;
    } else if (!(err == -EINVAL && n == 0)) {
      std::string op = "delete batch (stopped after " + std::to_string(n) + " of " + std::to_string(count) + ")";
      Fail(env, op.c_str(), err);
    }
  }
  for (__u32 i = 0; i < count; i++) {
    int err = bpf_map_delete_elem(fd_, keys.data + size_t(i) * layout.keySize);
    if (err) {
      std::string op = "delete batch (stopped after " + std::to_string(i) + " of " + std::to_string(count) + ")";
      Fail(env, op.c_str(), err);
    }
  }
  return Napi::Number::New(env, count);
}

// The 8-byte word `index` of an mmap'ed BPF_F_MMAPABLE array; mapped on first
// use and unmapped with the fd.
__u64 *MapHandle::Slot(Napi::Env env, uint32_t index) {
  const MapLayout &layout = Layout(env);
  // Values of whole 8-byte words lie back to back in the mmap: word `index` of
  // the array, whatever the value size, is at index * 8.
  if (layout.type != BPF_MAP_TYPE_ARRAY || !(layout.flags & BPF_F_MMAPABLE) || layout.valueBytes % 8 != 0) {
    throw Napi::TypeError::New(env, label_ + " is not a BPF_F_MMAPABLE array of 8-byte words");
  }
  const size_t words = size_t(layout.maxEntries) * (layout.valueBytes / 8);
  if (index >= words) {
    throw Napi::RangeError::New(env, "index " + std::to_string(index) + " is out of range for " + label_);
  }
  if (mapped_ == nullptr) {
    size_t page = sysconf(_SC_PAGESIZE);
    size_t size = (words * 8 + page - 1) / page * page;
    void *addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (addr == MAP_FAILED) Fail(env, "mmap", errno);
    mapped_ = addr;
    mappedSize_ = size;
  }
  return static_cast<__u64 *>(mapped_) + index;
}

Napi::Value MapHandle::StoreU64(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  __u64 *slot = Slot(env, info[0].As<Napi::Number>().Uint32Value());
  bool lossless = false;
  __u64 value = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(env, "value does not fit in 64 bits");
  __atomic_store_n(slot, value, __ATOMIC_RELEASE);
  return env.Undefined();
}

Napi::Value MapHandle::LoadU64(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  __u64 *slot = Slot(env, info[0].As<Napi::Number>().Uint32Value());
  return Napi::BigInt::New(env, static_cast<uint64_t>(__atomic_load_n(slot, __ATOMIC_ACQUIRE)));
}

Napi::Value MapHandle::BtfTypes(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_map_info m = {};
  __u32 len = sizeof(m);
  if (int err = bpf_obj_get_info_by_fd(Fd(env), &m, &len)) Fail(env, "map info", err);
  Napi::Object out = Napi::Object::New(env);
  if (m.btf_id == 0) return out;
  LibbpfCapture capture;
  struct btf *btf = btf__load_from_kernel_by_id(m.btf_id);
  if (btf == nullptr) ThrowErrno(env, "load map BTF", errno, label_, &capture);
  try {
    out.Set("key", BtfTypeToJs(env, btf, m.btf_key_type_id));
    out.Set("value", BtfTypeToJs(env, btf, m.btf_value_type_id));
  } catch (...) {
    btf__free(btf);
    throw;
  }
  btf__free(btf);
  return out;
}

int MapFd(const Napi::Value &value) { return MapHandle::Of(value, "map")->Fd(value.Env()); }

namespace {

// The per-element map operations are plain functions of (fd, ...), not
// MapHandle methods: a method call pays for its receiver and napi_unwrap,
// which costs as much as the rest of the crossing together. BpfMap owns the
// handle, checks it is open and checks the buffer sizes before calling.
// The label only names the map in an error.

// mapLookup(fd, key, valueOut, label) -> found
Napi::Value MapLookup(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Bytes key = GetBytes(env, info[1], "key");
  Bytes value = GetBytes(env, info[2], "value");
  int err = bpf_map_lookup_elem(info[0].As<Napi::Number>().Int32Value(), key.data, value.data);
  if (err == -ENOENT) return Napi::Boolean::New(env, false);
  if (err) ThrowErrno(env, "lookup", err, info[3].As<Napi::String>());
  return Napi::Boolean::New(env, true);
}

// mapUpdate(fd, key, value, flags, label)
Napi::Value MapUpdate(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Bytes key = GetBytes(env, info[1], "key");
  Bytes value = GetBytes(env, info[2], "value");
  int err = bpf_map_update_elem(info[0].As<Napi::Number>().Int32Value(), key.data, value.data,
                                info[3].As<Napi::Number>().Uint32Value());
  if (err) ThrowErrno(env, "update", err, info[4].As<Napi::String>());
  return env.Undefined();
}

// mapDelete(fd, key, label) -> existed
Napi::Value MapDelete(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Bytes key = GetBytes(env, info[1], "key");
  int err = bpf_map_delete_elem(info[0].As<Napi::Number>().Int32Value(), key.data);
  if (err == -ENOENT) return Napi::Boolean::New(env, false);
  if (err) ThrowErrno(env, "delete", err, info[2].As<Napi::String>());
  return Napi::Boolean::New(env, true);
}

// mapNextKey(fd, key | null, nextOut, label) -> found
Napi::Value MapNextKey(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const void *current = info[1].IsNull() ? nullptr : GetBytes(env, info[1], "key").data;
  Bytes next = GetBytes(env, info[2], "next key");
  int err = bpf_map_get_next_key(info[0].As<Napi::Number>().Int32Value(), current, next.data);
  if (err == -ENOENT) return Napi::Boolean::New(env, false);
  if (err) ThrowErrno(env, "next key", err, info[3].As<Napi::String>());
  return Napi::Boolean::New(env, true);
}

// mapCreate(type, name, keySize, valueSize, maxEntries, flags)
Napi::Value MapCreate(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto type = static_cast<enum bpf_map_type>(info[0].As<Napi::Number>().Uint32Value());
  std::string name = info[1].As<Napi::String>().Utf8Value();
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = info[5].As<Napi::Number>().Uint32Value());
  LibbpfCapture capture;
  int fd = bpf_map_create(type, name.empty() ? nullptr : name.c_str(), info[2].As<Napi::Number>().Uint32Value(),
                          info[3].As<Napi::Number>().Uint32Value(), info[4].As<Napi::Number>().Uint32Value(),
                          &opts);
  if (fd < 0) ThrowErrno(env, "map create", fd, "BpfMap '" + name + "'", &capture);
  return NewHandle(env, HandleKind::Map, fd);
}

}  // namespace

void InitMap(Napi::Env env, Napi::Object exports, AddonData *data) {
  data->handles[static_cast<int>(HandleKind::Map)] = Napi::Persistent(MapHandle::Define(env));
  exports.Set("mapCreate", Napi::Function::New(env, MapCreate, "mapCreate"));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup, "mapLookup"));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate, "mapUpdate"));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete, "mapDelete"));
  exports.Set("mapNextKey", Napi::Function::New(env, MapNextKey, "mapNextKey"));
}

}  // namespace nc
