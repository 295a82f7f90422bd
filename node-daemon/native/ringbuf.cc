// RingBuffer: libbpf's ring_buffer consumer driven by the libuv loop. The
// ring's epoll fd is watched with a uv_poll_t; when it turns readable the main
// thread consumes everything available and hands the records, in order, to
// JavaScript in one call. No polling thread, no timer. The watch runs only
// while JavaScript listens (resume/pause): until then records wait in the ring.
#include "common.h"

#include <uv.h>

#include <memory>

namespace nc {

class RingBufferWrap : public Napi::ObjectWrap<RingBufferWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit RingBufferWrap(const Napi::CallbackInfo &info);
  ~RingBufferWrap() override { Release(); }

 private:
  static int OnSample(void *ctx, void *data, size_t size);
  static void OnReadable(uv_poll_t *poll, int status, int events);
  void Drain();
  void Release();
  Napi::Value Close(const Napi::CallbackInfo &info);
  Napi::Value Resume(const Napi::CallbackInfo &info);
  Napi::Value Pause(const Napi::CallbackInfo &info);

  napi_env env_;
  std::string label_;
  struct ring_buffer *rb_ = nullptr;
  uv_poll_t *poll_ = nullptr;
  Napi::FunctionReference onRecords_;
  Napi::FunctionReference onError_;
  std::unique_ptr<Napi::AsyncContext> context_;
  Napi::Array batch_;
  uint32_t batchLength_ = 0;
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
  LibbpfCapture capture;
  rb_ = ring_buffer__new(HandleFd(info[0]), OnSample, this, nullptr);
  if (rb_ == nullptr) ThrowErrno(env, "open ring buffer", errno, label_, &capture);
  uv_loop_t *loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  poll_ = new uv_poll_t;
  int err = uv_poll_init(loop, poll_, ring_buffer__epoll_fd(rb_));
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

int RingBufferWrap::OnSample(void *ctx, void *data, size_t size) {
  auto *self = static_cast<RingBufferWrap *>(ctx);
  Napi::Env env(self->env_);
  self->batch_.Set(self->batchLength_++, Napi::Buffer<uint8_t>::Copy(env, static_cast<uint8_t *>(data), size));
  return 0;
}

void RingBufferWrap::OnReadable(uv_poll_t *poll, int status, int) {
  auto *self = static_cast<RingBufferWrap *>(poll->data);
  if (self == nullptr || self->rb_ == nullptr) return;
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

void RingBufferWrap::Drain() {
  Napi::Env env(env_);
  batch_ = Napi::Array::New(env);
  batchLength_ = 0;
  LibbpfCapture capture;
  int n = ring_buffer__consume(rb_);
  Napi::Array records = batch_;
  batch_ = Napi::Array();
  if (batchLength_ > 0) onRecords_.MakeCallback(env.Global(), {records}, *context_);
  if (n < 0 && rb_ != nullptr) {
    Failure failure;
    failure.Set("consume ring buffer", n);
    failure.log = capture.Take();
    Napi::Error error = MakeError(env, failure, label_);
    onError_.MakeCallback(env.Global(), {error.Value()}, *context_);
  }
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
  if (rb_ != nullptr) {
    ring_buffer__free(rb_);
    rb_ = nullptr;
  }
  // The async context stays until destruction: close() may be called from
  // inside a callback that still runs in it.
  onRecords_.Reset();
  onError_.Reset();
  cleanup_.Remove();
}

// Records wait in the ring while nobody listens; resume() starts watching.
Napi::Value RingBufferWrap::Resume(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (poll_ == nullptr) throw Napi::Error::New(env, label_ + " is closed");
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
