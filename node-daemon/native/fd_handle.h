// FdHandle<T>: what every handle on a kernel fd shares, one Napi::ObjectWrap
// class per kind (as better-sqlite3 has one per native object): MapHandle
// (map.cc), ProgramHandle (program.cc), LinkHandle (link.cc), SocketHandle
// (socket.cc). A handle owns its fd and closes it on close(), when garbage
// collected, or when its environment goes away (worker or process exit),
// whichever comes first. Each instance carries its kind's type tag, so a
// function that needs a map (MapFd) cannot be handed a program.
#pragma once

#include "common.h"

#include <unistd.h>

#include <string>
#include <vector>

namespace nc {

struct Bytes {
  uint8_t *data = nullptr;
  size_t length = 0;
};

// The bytes of a Buffer (or any TypedArray view) argument, in place.
inline Bytes GetBytes(const Napi::Env &env, napi_value value, const char *what) {
  Bytes bytes;
  void *data = nullptr;
  if (napi_get_buffer_info(env, value, &data, &bytes.length) != napi_ok) {
    throw Napi::TypeError::New(env, std::string(what) + " must be a Buffer");
  }
  bytes.data = static_cast<uint8_t *>(data);
  return bytes;
}

// The type tag of each handle kind (napi_type_tag_object).
const napi_type_tag &HandleTag(HandleKind kind);

// T: the handle class (CRTP); T::kKind its kind. T may define OnRelease() for
// what it holds beside the fd (a mapping), run before the fd is closed.
template <class T>
class FdHandle : public Napi::ObjectWrap<T> {
 public:
  // new T(fd)
  explicit FdHandle(const Napi::CallbackInfo &info)
      : Napi::ObjectWrap<T>(info),
        fd_(info[0].As<Napi::Number>().Int32Value()),
        cleanup_(info.Env(), [this] { Release(); }) {
    napi_type_tag_object(info.Env(), info.This(), &HandleTag(T::kKind));
  }
  ~FdHandle() override { CloseFd(); }

  int Fd(Napi::Env env) const {
    if (fd_ < 0) throw Napi::Error::New(env, label_ + " is closed");
    return fd_;
  }

  // The handle object `value` as a T, checked by its tag; throws TypeError naming `expected`.
  static T *Of(const Napi::Value &value, const char *expected) {
    Napi::Env env = value.Env();
    bool ok = false;
    if (value.IsObject()) napi_check_object_type_tag(env, value, &HandleTag(T::kKind), &ok);
    if (!ok) throw Napi::TypeError::New(env, std::string("expected a native ") + expected + " handle");
    return T::Unwrap(value.As<Napi::Object>());
  }

 protected:
  // What every kind has: fd, close(), setLabel(label), and for BPF objects pin(path).
  static std::vector<typename Napi::ObjectWrap<T>::PropertyDescriptor> Common(bool pinnable) {
    using W = Napi::ObjectWrap<T>;
    using Method = typename W::InstanceMethodCallback;
    std::vector<typename W::PropertyDescriptor> out = {
        W::InstanceAccessor("fd", static_cast<typename W::InstanceGetterCallback>(&FdHandle::GetFd), nullptr),
        W::InstanceMethod("close", static_cast<Method>(&FdHandle::Close)),
        W::InstanceMethod("setLabel", static_cast<Method>(&FdHandle::SetLabel)),
    };
    if (pinnable) out.push_back(W::InstanceMethod("pin", static_cast<Method>(&FdHandle::Pin)));
    return out;
  }

  [[noreturn]] void Fail(Napi::Env env, const char *op, int err) const { ThrowErrno(env, op, err, label_); }

  void OnRelease() {}

  int fd_;
  std::string label_ = "bpf handle";

 private:
  void Release() {
    static_cast<T *>(this)->OnRelease();
    CloseFd();
  }
  void CloseFd() {
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
    cleanup_.Remove();
  }

  Napi::Value GetFd(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), fd_); }
  Napi::Value Close(const Napi::CallbackInfo &info) {
    Release();
    return info.Env().Undefined();
  }
  Napi::Value SetLabel(const Napi::CallbackInfo &info) {
    label_ = info[0].As<Napi::String>().Utf8Value();
    return info.Env().Undefined();
  }
  Napi::Value Pin(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string path = info[0].As<Napi::String>().Utf8Value();
    if (int err = bpf_obj_pin(Fd(env), path.c_str())) Fail(env, ("pin at " + path).c_str(), err);
    return env.Undefined();
  }

  EnvCleanup cleanup_;
};

}  // namespace nc
