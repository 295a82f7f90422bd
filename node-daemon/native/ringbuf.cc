// RingBuffer: a BPF ring buffer read in bounded slices on the libuv loop.
//
// The ring is mapped as libbpf maps it (the consumer position read-write, the
// producer position and the data, mapped twice in a row so that a record that
// wraps reads as one piece, read-only), and the map's fd is watched with a
// uv_poll_t. When it turns readable the main thread takes at most `budget`
// records, hands them to JavaScript in one call and returns to the loop. The
// kernel reports the fd readable for as long as records wait (epoll here is
// level-triggered), so the loop comes back for the rest after everything else
// that was ready has run: a producer that never stops cannot hold the loop,
// and what is in flight is at most one slice. (libbpf 1.1's
// ring_buffer__consume reads until the ring is empty, which under a steady
// flood is never.) No polling thread, no timer. The watch runs only while
// JavaScript listens (resume/pause): until then records wait in the ring.
#include "common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <memory>

namespace nc {

class RingBufferWrap : public Napi::ObjectWrap<RingBufferWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit RingBufferWrap(const Napi::CallbackInfo &info);
  ~RingBufferWrap() override { Release(); }

 private:
  static void OnReadable(uv_poll_t *poll, int status, int events);
  void Drain();
  void Release();
  Napi::Value Close(const Napi::CallbackInfo &info);
  Napi::Value Resume(const Napi::CallbackInfo &info);
  Napi::Value Pause(const Napi::CallbackInfo &info);

  napi_env env_;
  std::string label_;
  int fd_ = -1;  // our own dup of the map's fd: the one uv_poll watches
  size_t pageSize_ = 0;
  size_t size_ = 0;  // data bytes, a power of two
  unsigned long *consumerPos_ = nullptr;  // the first page, read-write
  unsigned long *producerPos_ = nullptr;  // the second page, read-only, followed by the data twice
  const uint8_t *data_ = nullptr;
  uint32_t budget_ = 1;
  uv_poll_t *poll_ = nullptr;
  Napi::FunctionReference onRecords_;
  Napi::FunctionReference onError_;
  std::unique_ptr<Napi::AsyncContext> context_;
  EnvCleanup cleanup_;
};

Napi::Function RingBufferWrap::Define(Napi::Env env) {
  return DefineClass(env, "RingBuffer",
                     {
                         InstanceMethod<&RingBufferWrap::Close>("close"),
                         InstanceMethod<&RingBufferWrap::Resume>("resume"),
                         InstanceMethod<&RingBufferWrap::Pause>("pause"),
                     });
}

// new RingBuffer(map handle, label, onRecords(records: Buffer[]), onError(error))
RingBufferWrap::RingBufferWrap(const Napi::CallbackInfo &info)
    : Napi::ObjectWrap<RingBufferWrap>(info), env_(info.Env()), cleanup_(info.Env(), [this] { Release(); }) {
  Napi::Env env = info.Env();
  label_ = info[1].As<Napi::String>().Utf8Value();
  int mapFd = MapFd(info[0]);
  struct bpf_map_info map = {};
  __u32 len = sizeof(map);
  if (int err = bpf_obj_get_info_by_fd(mapFd, &map, &len)) ThrowErrno(env, "map info", err, label_);
  if (map.type != BPF_MAP_TYPE_RINGBUF) throw Napi::TypeError::New(env, label_ + ": not a ringbuf map");
  fd_ = fcntl(mapFd, F_DUPFD_CLOEXEC, 0);
  if (fd_ < 0) ThrowErrno(env, "dup", errno, label_);
  pageSize_ = sysconf(_SC_PAGESIZE);
  size_ = map.max_entries;
  void *consumer = mmap(nullptr, pageSize_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (consumer == MAP_FAILED) {
    int err = errno;
    Release();
    ThrowErrno(env, "mmap ring buffer consumer page", err, label_);
  }
  consumerPos_ = static_cast<unsigned long *>(consumer);
  void *producer = mmap(nullptr, pageSize_ + 2 * size_, PROT_READ, MAP_SHARED, fd_, pageSize_);
  if (producer == MAP_FAILED) {
    int err = errno;
    Release();
    ThrowErrno(env, "mmap ring buffer data", err, label_);
  }
  producerPos_ = static_cast<unsigned long *>(producer);
  data_ = static_cast<const uint8_t *>(producer) + pageSize_;

  uv_loop_t *loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  poll_ = new uv_poll_t;
  int err = uv_poll_init(loop, poll_, fd_);
  if (err != 0) {
    delete poll_;  // never initialized, so not for uv_close
    poll_ = nullptr;
    Release();
    ThrowErrno(env, "watch ring buffer", -err, label_);
  }
  poll_->data = this;
  onRecords_ = Napi::Persistent(info[2].As<Napi::Function>());
  onError_ = Napi::Persistent(info[3].As<Napi::Function>());
  context_ = std::make_unique<Napi::AsyncContext>(env, "netcube:RingBufReader");
}

void RingBufferWrap::OnReadable(uv_poll_t *poll, int status, int) {
  auto *self = static_cast<RingBufferWrap *>(poll->data);
  if (self == nullptr || self->consumerPos_ == nullptr) return;
  Napi::Env env(self->env_);
  Napi::HandleScope scope(env);
  try {
    if (status < 0) {
      Failure failure;
      failure.Set("watch ring buffer", -status);
      Napi::Error error = MakeError(env, failure, self->label_);
      self->onError_.MakeCallback(env.Global(), {error.Value()}, *self->context_);
      return;
    }
    self->Drain();
  } catch (const Napi::Error &error) {
    // A throwing listener is an uncaught exception of the process, as for
    // any other I/O callback; it must not unwind into libuv.
    napi_fatal_exception(self->env_, error.Value());
  }
}

// At most budget_ records, in order, as the kernel's ringbuf protocol has it
// (and libbpf's ringbuf_process_ring): a record's length word carries a busy
// bit while the producer fills it and a discard bit when it gave it up; the
// consumer position moves past each record, discarded or not, with a release
// store the producer's reserve reads.
void RingBufferWrap::Drain() {
  Napi::Env env(env_);
  Napi::Array records = Napi::Array::New(env);
  uint32_t count = 0;
  unsigned long consumer = __atomic_load_n(consumerPos_, __ATOMIC_ACQUIRE);
  while (count < budget_) {
    unsigned long producer = __atomic_load_n(producerPos_, __ATOMIC_ACQUIRE);
    if (consumer >= producer) break;
    const uint8_t *header = data_ + (consumer & (size_ - 1));
    uint32_t word = __atomic_load_n(reinterpret_cast<const uint32_t *>(header), __ATOMIC_ACQUIRE);
    if (word & BPF_RINGBUF_BUSY_BIT) break;  // the next record is still being written
    uint32_t length = word & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
    if (!(word & BPF_RINGBUF_DISCARD_BIT)) {
      records.Set(count++, Napi::Buffer<uint8_t>::Copy(env, header + BPF_RINGBUF_HDR_SZ, length));
    }
    consumer += (length + BPF_RINGBUF_HDR_SZ + 7) & ~7ul;
    __atomic_store_n(consumerPos_, consumer, __ATOMIC_RELEASE);
  }
  if (count > 0) onRecords_.MakeCallback(env.Global(), {records}, *context_);
}

void RingBufferWrap::Release() {
  if (poll_ != nullptr) {
    uv_poll_stop(poll_);
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t *>(poll_), [](uv_handle_t *handle) {
      delete reinterpret_cast<uv_poll_t *>(handle);
    });
    poll_ = nullptr;
  }
  if (producerPos_ != nullptr) {
    munmap(producerPos_, pageSize_ + 2 * size_);
    producerPos_ = nullptr;
    data_ = nullptr;
  }
  if (consumerPos_ != nullptr) {
    munmap(consumerPos_, pageSize_);
    consumerPos_ = nullptr;
  }
  // After uv_close: libuv no longer watches the fd.
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  // The async context stays until destruction: close() may be called from
  // inside a callback that still runs in it.
  onRecords_.Reset();
  onError_.Reset();
  cleanup_.Remove();
}

// resume(budget): records wait in the ring while nobody listens; this starts
// watching, taking at most `budget` records each time the ring turns readable.
Napi::Value RingBufferWrap::Resume(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (poll_ == nullptr) throw Napi::Error::New(env, label_ + " is closed");
  budget_ = std::max(1u, info[0].As<Napi::Number>().Uint32Value());
  if (int err = uv_poll_start(poll_, UV_READABLE, OnReadable)) ThrowErrno(env, "watch ring buffer", -err, label_);
  return env.Undefined();
}

Napi::Value RingBufferWrap::Pause(const Napi::CallbackInfo &info) {
  if (poll_ != nullptr) uv_poll_stop(poll_);
  return info.Env().Undefined();
}

Napi::Value RingBufferWrap::Close(const Napi::CallbackInfo &info) {
  Release();
  return info.Env().Undefined();
}

void InitRingBuffer(Napi::Env env, Napi::Object exports) {
  exports.Set("RingBuffer", RingBufferWrap::Define(env));
}

}  // namespace nc
