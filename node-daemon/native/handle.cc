// FdHandle: the one native handle kind for everything the kernel hands out as
// an fd (map, program, link): it owns the fd. Test runs and link updates dup
// it, so a close() meanwhile cannot hand them a reused fd number.
#include "common.h"

#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

namespace nc {

namespace {

// Kernel-internal "operation not supported", returned for batch operations a
// map type lacks; user space headers do not define it.
constexpr int kENOTSUPP = 524;

// Pins the calling thread to one CPU while in scope, then gives it back the
// CPUs it had (it may be a libuv worker that runs other jobs afterwards).
class CpuPin {
 public:
  bool To(int cpu, Failure &failure) {
    if (int err = pthread_getaffinity_np(pthread_self(), sizeof(saved_), &saved_)) {
      failure.Set("read the thread's CPU affinity", err);
      return false;
    }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (int err = pthread_setaffinity_np(pthread_self(), sizeof(one), &one)) {
      failure.Set(("pin the test run to CPU " + std::to_string(cpu)).c_str(), err);
      return false;
    }
    pinned_ = true;
    return true;
  }
  ~CpuPin() {
    if (pinned_) pthread_setaffinity_np(pthread_self(), sizeof(saved_), &saved_);
  }

 private:
  cpu_set_t saved_;
  bool pinned_ = false;
};

bool IsPerCpu(__u32 type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

struct Bytes {
  uint8_t *data = nullptr;
  size_t length = 0;
};

Bytes GetBytes(const Napi::Env &env, napi_value value, const char *what) {
  Bytes bytes;
  void *data = nullptr;
  if (napi_get_buffer_info(env, value, &data, &bytes.length) != napi_ok) {
    throw Napi::TypeError::New(env, std::string(what) + " must be a Buffer");
  }
  bytes.data = static_cast<uint8_t *>(data);
  return bytes;
}

std::string FdKind(int fd) {
  char path[64];
  char target[64] = {};
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, target, sizeof(target) - 1);
  if (n < 0) return "";
  std::string link(target, n);
  if (link == "anon_inode:bpf-map") return "map";
  if (link == "anon_inode:bpf-prog") return "program";
  // A new link is "bpf_link", one reopened from its pin "bpf-link".
  if (link == "anon_inode:bpf_link" || link == "anon_inode:bpf-link") return "link";
  return "other";
}

std::string Hex(const __u8 *bytes, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; i++) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 15];
  }
  return out;
}

std::string TypeName(const char *name, __u32 type) {
  return name != nullptr ? name : "unknown(" + std::to_string(type) + ")";
}

}  // namespace

class FdHandle : public Napi::ObjectWrap<FdHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit FdHandle(const Napi::CallbackInfo &info);
  ~FdHandle() override { Release(); }

  int Fd(Napi::Env env) const {
    if (fd_ < 0) throw Napi::Error::New(env, label_ + " is closed");
    return fd_;
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

  void Release();
  const MapLayout &Layout(Napi::Env env);
  void Check(Napi::Env env, const Bytes &bytes, size_t expected, const char *what) const;
  [[noreturn]] void Fail(Napi::Env env, const char *op, int err) const { ThrowErrno(env, op, err, label_); }

  Napi::Value GetFd(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);
  Napi::Value SetLabel(const Napi::CallbackInfo &info);
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value Pin(const Napi::CallbackInfo &info);
  Napi::Value LookupBatch(const Napi::CallbackInfo &info);
  Napi::Value UpdateBatch(const Napi::CallbackInfo &info);
  Napi::Value DeleteBatch(const Napi::CallbackInfo &info);
  Napi::Value StoreU64(const Napi::CallbackInfo &info);
  Napi::Value LoadU64(const Napi::CallbackInfo &info);
  Napi::Value BtfTypes(const Napi::CallbackInfo &info);
  Napi::Value TestRun(const Napi::CallbackInfo &info);
  Napi::Value LinkUpdate(const Napi::CallbackInfo &info);
  Napi::Value LinkDetach(const Napi::CallbackInfo &info);

  __u64 *Slot(Napi::Env env, uint32_t index);

  int fd_;
  std::string label_ = "bpf handle";
  std::unique_ptr<MapLayout> layout_;
  void *mapped_ = nullptr;
  size_t mappedSize_ = 0;
  bool noUpdateBatch_ = false;
  bool noDeleteBatch_ = false;
  EnvCleanup cleanup_;
};

Napi::Function FdHandle::Define(Napi::Env env) {
  return DefineClass(env, "FdHandle",
                     {
                         InstanceAccessor<&FdHandle::GetFd>("fd"),
                         InstanceMethod<&FdHandle::Close>("close"),
                         InstanceMethod<&FdHandle::SetLabel>("setLabel"),
                         InstanceMethod<&FdHandle::Info>("info"),
                         InstanceMethod<&FdHandle::Pin>("pin"),
                         InstanceMethod<&FdHandle::LookupBatch>("lookupBatch"),
                         InstanceMethod<&FdHandle::UpdateBatch>("updateBatch"),
                         InstanceMethod<&FdHandle::DeleteBatch>("deleteBatch"),
                         InstanceMethod<&FdHandle::StoreU64>("storeU64"),
                         InstanceMethod<&FdHandle::LoadU64>("loadU64"),
                         InstanceMethod<&FdHandle::BtfTypes>("btfTypes"),
                         InstanceMethod<&FdHandle::TestRun>("testRun"),
                         InstanceMethod<&FdHandle::LinkUpdate>("linkUpdate"),
                         InstanceMethod<&FdHandle::LinkDetach>("linkDetach"),
                     });
}

FdHandle::FdHandle(const Napi::CallbackInfo &info)
    : Napi::ObjectWrap<FdHandle>(info),
      fd_(info[0].As<Napi::Number>().Int32Value()),
      cleanup_(info.Env(), [this] { Release(); }) {}

void FdHandle::Release() {
  if (mapped_ != nullptr) {
    munmap(mapped_, mappedSize_);
    mapped_ = nullptr;
  }
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  cleanup_.Remove();
}

const FdHandle::MapLayout &FdHandle::Layout(Napi::Env env) {
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

void FdHandle::Check(Napi::Env env, const Bytes &bytes, size_t expected, const char *what) const {
  if (bytes.length != expected) {
    throw Napi::RangeError::New(env, std::string(what) + " of " + label_ + " is " + std::to_string(bytes.length) +
                                         " bytes, expected " + std::to_string(expected));
  }
}

Napi::Value FdHandle::GetFd(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), fd_); }

Napi::Value FdHandle::Close(const Napi::CallbackInfo &info) {
  Release();
  return info.Env().Undefined();
}

Napi::Value FdHandle::SetLabel(const Napi::CallbackInfo &info) {
  label_ = info[0].As<Napi::String>().Utf8Value();
  return info.Env().Undefined();
}

Napi::Value FdHandle::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env);
  std::string kind = FdKind(fd);
  Napi::Object out = Napi::Object::New(env);
  out.Set("kind", kind);
  if (kind == "map") {
    struct bpf_map_info m = {};
    __u32 len = sizeof(m);
    if (int err = bpf_obj_get_info_by_fd(fd, &m, &len)) Fail(env, "map info", err);
    out.Set("type", TypeName(libbpf_bpf_map_type_str(static_cast<enum bpf_map_type>(m.type)), m.type));
    out.Set("id", m.id);
    out.Set("name", m.name);
    out.Set("keySize", m.key_size);
    out.Set("valueSize", m.value_size);
    out.Set("maxEntries", m.max_entries);
    out.Set("flags", m.map_flags);
    out.Set("btfId", m.btf_id);
  } else if (kind == "program") {
    struct bpf_prog_info p = {};
    __u32 len = sizeof(p);
    if (int err = bpf_obj_get_info_by_fd(fd, &p, &len)) Fail(env, "program info", err);
    out.Set("type", TypeName(libbpf_bpf_prog_type_str(static_cast<enum bpf_prog_type>(p.type)), p.type));
    out.Set("id", p.id);
    out.Set("name", p.name);
    out.Set("tag", Hex(p.tag, sizeof(p.tag)));
    out.Set("btfId", p.btf_id);
    out.Set("runTimeNs", static_cast<double>(p.run_time_ns));
    out.Set("runCount", static_cast<double>(p.run_cnt));
  } else if (kind == "link") {
    struct bpf_link_info l = {};
    __u32 len = sizeof(l);
    if (int err = bpf_obj_get_info_by_fd(fd, &l, &len)) Fail(env, "link info", err);
    out.Set("type", TypeName(libbpf_bpf_link_type_str(static_cast<enum bpf_link_type>(l.type)), l.type));
    out.Set("id", l.id);
    out.Set("programId", l.prog_id);
    if (l.type == BPF_LINK_TYPE_XDP) out.Set("ifindex", l.xdp.ifindex);
  }
  return out;
}

Napi::Value FdHandle::Pin(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (int err = bpf_obj_pin(Fd(env), path.c_str())) Fail(env, ("pin at " + path).c_str(), err);
  return env.Undefined();
}

// BPF_MAP_LOOKUP_BATCH over the whole map in chunks; map types without batch
// support are walked with get_next_key + lookup instead.
Napi::Value FdHandle::LookupBatch(const Napi::CallbackInfo &info) {
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

Napi::Value FdHandle::UpdateBatch(const Napi::CallbackInfo &info) {
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

Napi::Value FdHandle::DeleteBatch(const Napi::CallbackInfo &info) {
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

// The 8-byte slot `index` of an mmap'ed BPF_F_MMAPABLE array; mapped on first
// use and unmapped with the fd.
__u64 *FdHandle::Slot(Napi::Env env, uint32_t index) {
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

Napi::Value FdHandle::StoreU64(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  __u64 *slot = Slot(env, info[0].As<Napi::Number>().Uint32Value());
  bool lossless = false;
  __u64 value = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(env, "value does not fit in 64 bits");
  __atomic_store_n(slot, value, __ATOMIC_RELEASE);
  return env.Undefined();
}

Napi::Value FdHandle::LoadU64(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  __u64 *slot = Slot(env, info[0].As<Napi::Number>().Uint32Value());
  return Napi::BigInt::New(env, static_cast<uint64_t>(__atomic_load_n(slot, __ATOMIC_ACQUIRE)));
}

Napi::Value FdHandle::BtfTypes(const Napi::CallbackInfo &info) {
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

// testRun(data, ctx | null, dataSizeOut, ctxSizeOut, repeat, liveFrames, batchSize, netns)
Napi::Value FdHandle::TestRun(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct State {
    int fd = -1;
    std::vector<uint8_t> data, ctx, dataOut, ctxOut;
    bool hasCtx = false;
    bool live = false;
    int repeat = 0;
    __u32 batchSize = 0;
    std::string netns;
    int cpu = -1;
    struct bpf_test_run_opts opts = {};
    double cpuNs = 0;  // CPU time of this thread in the syscall (CLOCK_THREAD_CPUTIME_ID)
    ~State() {
      if (fd >= 0) close(fd);
    }
  };
  auto state = std::make_shared<State>();
  Bytes data = GetBytes(env, info[0], "data");
  state->data.assign(data.data, data.data + data.length);
  if (!info[1].IsNull()) {
    Bytes ctx = GetBytes(env, info[1], "ctx");
    state->ctx.assign(ctx.data, ctx.data + ctx.length);
    state->hasCtx = true;
  }
  state->live = info[5].As<Napi::Boolean>().Value();
  // Live frames are transmitted, not copied back: the kernel refuses out buffers.
  if (!state->live) {
    state->dataOut.resize(info[2].As<Napi::Number>().Uint32Value());
    if (state->hasCtx) state->ctxOut.resize(info[3].As<Napi::Number>().Uint32Value());
  }
  state->repeat = info[4].As<Napi::Number>().Int32Value();
  state->batchSize = info[6].As<Napi::Number>().Uint32Value();
  state->netns = StringOr(info[7], "");
  if (info[8].IsNumber()) state->cpu = info[8].As<Napi::Number>().Int32Value();
  // Our own fd: a close() of the program while the run is under way cannot
  // hand the run a reused fd number.
  state->fd = fcntl(Fd(env), F_DUPFD_CLOEXEC, 0);
  if (state->fd < 0) Fail(env, "dup", errno);

  return Job::Start(
      env, label_,
      [state](Failure &failure) {
        RunInNetns(state->netns, failure, [state](Failure &f) {
          CpuPin pin;
          if (state->cpu >= 0 && !pin.To(state->cpu, f)) return;
          auto &o = state->opts;
          o.sz = sizeof(o);
          o.data_in = state->data.data();
          o.data_size_in = state->data.size();
          o.repeat = state->repeat;
          if (state->hasCtx) {
            o.ctx_in = state->ctx.data();
            o.ctx_size_in = state->ctx.size();
          }
          if (state->live) {
            o.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
            o.batch_size = state->batchSize;
          } else {
            o.data_out = state->dataOut.data();
            o.data_size_out = state->dataOut.size();
            if (state->hasCtx) {
              o.ctx_out = state->ctxOut.data();
              o.ctx_size_out = state->ctxOut.size();
            }
          }
          struct timespec before, after;
          clock_gettime(CLOCK_THREAD_CPUTIME_ID, &before);
          if (int err = bpf_prog_test_run_opts(state->fd, &o)) f.Set("test run", err);
          clock_gettime(CLOCK_THREAD_CPUTIME_ID, &after);
          state->cpuNs = (after.tv_sec - before.tv_sec) * 1e9 + (after.tv_nsec - before.tv_nsec);
        });
      },
      [state](Napi::Env env) -> Napi::Value {
        const auto &o = state->opts;
        Napi::Object out = Napi::Object::New(env);
        out.Set("retval", o.retval);
        out.Set("durationNs", o.duration);
        out.Set("cpuNs", state->cpuNs);
        size_t dataLen = std::min<size_t>(o.data_size_out, state->dataOut.size());
        out.Set("data", Napi::Buffer<uint8_t>::Copy(env, state->dataOut.data(), dataLen));
        if (state->hasCtx && !state->live) {
          size_t ctxLen = std::min<size_t>(o.ctx_size_out, state->ctxOut.size());
          out.Set("ctx", Napi::Buffer<uint8_t>::Copy(env, state->ctxOut.data(), ctxLen));
        }
        return out;
      });
}

Napi::Value FdHandle::LinkUpdate(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int progFd = HandleFd(info[0]);
  if (int err = bpf_link_update(Fd(env), progFd, nullptr)) Fail(env, "link update", err);
  return env.Undefined();
}

// BPF_LINK_DETACH: off its hook now, whoever else holds the link. Dropping the
// last reference detaches too, but the one a pin holds is dropped only after an
// RCU grace period, so a re-attach right after unlinking the pin can find the
// hook still taken.
Napi::Value FdHandle::LinkDetach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (int err = bpf_link_detach(Fd(env))) Fail(env, "link detach", err);
  return env.Undefined();
}

int HandleFd(const Napi::Value &value) {
  Napi::Env env = value.Env();
  if (!value.IsObject()) throw Napi::TypeError::New(env, "expected a native handle");
  FdHandle *handle = FdHandle::Unwrap(value.As<Napi::Object>());
  if (handle == nullptr) throw Napi::TypeError::New(env, "expected a native handle");
  return handle->Fd(env);
}

Napi::Object NewHandle(Napi::Env env, int fd) {
  return env.GetInstanceData<AddonData>()->fdHandle.New({Napi::Number::New(env, fd)});
}

namespace {

// The per-element map operations are plain functions of (fd, ...), not
// FdHandle methods: a method call pays for its receiver and napi_unwrap,
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
  return NewHandle(env, fd);
}

Napi::Value ObjGet(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(env, "open pinned object", fd, "'" + path + "'");
  return NewHandle(env, fd);
}

// synchronizeRcu() -> Promise<void>: returns after an RCU grace period, when
// no BPF program still runs with what a map held before the call. XDP and TC
// programs run inside RCU read-side sections, and membarrier's GLOBAL command is
// implemented with synchronize_rcu(): it returns once all of them have left.
// (Map-in-map updates no longer wait since the kernel defers inner-map frees.)
Napi::Value SynchronizeRcu(const Napi::CallbackInfo &info) {
  return Job::Start(
      info.Env(), "synchronizeRcu",
      [](Failure &failure) {
        if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) < 0) failure.Set("membarrier", -errno);
      },
      [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
}

}  // namespace

void InitHandle(Napi::Env env, Napi::Object exports, AddonData *data) {
  data->fdHandle = Napi::Persistent(FdHandle::Define(env));
  exports.Set("mapCreate", Napi::Function::New(env, MapCreate, "mapCreate"));
  exports.Set("objGet", Napi::Function::New(env, ObjGet, "objGet"));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup, "mapLookup"));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate, "mapUpdate"));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete, "mapDelete"));
  exports.Set("mapNextKey", Napi::Function::New(env, MapNextKey, "mapNextKey"));
  exports.Set("packetSend", Napi::Function::New(env, PacketSend, "packetSend"));
  exports.Set("synchronizeRcu", Napi::Function::New(env, SynchronizeRcu, "synchronizeRcu"));
}

}  // namespace nc
