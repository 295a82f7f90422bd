// Shared pieces of the native half of the libbpf binding: libbpf log capture,
// errors handed to the TypeScript error factory, promise-returning workers and
// the per-handle environment cleanup hook.
#pragma once

#include <napi.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <unistd.h>

#include <functional>
#include <memory>
#include <string>

namespace nc {

// Collects the warnings libbpf prints on the current thread while it is alive.
// libbpf has one global print callback; a thread_local sink lets calls on
// different threads (main thread, pool threads, namespace threads) each keep
// their own messages for their own error.
class LibbpfCapture {
 public:
  LibbpfCapture();
  ~LibbpfCapture();
  LibbpfCapture(const LibbpfCapture &) = delete;
  LibbpfCapture &operator=(const LibbpfCapture &) = delete;
  std::string Take();

  static void Install();

 private:
  static int Print(enum libbpf_print_level level, const char *fmt, va_list ap);
  LibbpfCapture *outer_;
  std::string text_;
};

// A failed operation, described well enough for the TypeScript error factory
// (errors.ts) to pick the error class and write the message.
struct Failure {
  std::string op;
  int err = 0;  // positive errno, or a libbpf LIBBPF_ERRNO__* code
  std::string log;
  std::string program;      // set with verifierLog when the verifier rejected it
  std::string verifierLog;

  bool Failed() const { return err != 0; }
  void Set(const char *what, int errnum) {
    op = what;
    err = errnum < 0 ? -errnum : errnum;
  }
};

// The kinds of kernel handle, one ObjectWrap class each (fd_handle.h).
enum class HandleKind { Map = 0, Program = 1, Link = 2, Socket = 3 };
constexpr int kHandleKinds = 4;

// Per-environment state: the error factory and each handle kind's constructor.
struct AddonData {
  Napi::FunctionReference makeError;
  Napi::FunctionReference handles[kHandleKinds];
};

Napi::Error MakeError(Napi::Env env, const Failure &failure, const std::string &label);

// Throws the JS error for a failed call made on the main thread.
[[noreturn]] void ThrowFailure(Napi::Env env, const Failure &failure, const std::string &label);
[[noreturn]] void ThrowErrno(Napi::Env env, const char *op, int err, const std::string &label,
                             LibbpfCapture *capture = nullptr);

// Runs `work` on the libuv pool and settles a promise with `done` (main
// thread) or with the error built from the Failure that `work` filled in.
class Job : public Napi::AsyncWorker {
 public:
  using Work = std::function<void(Failure &)>;
  using Done = std::function<Napi::Value(Napi::Env)>;

  static Napi::Promise Start(Napi::Env env, std::string label, Work work, Done done);

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error &error) override;

 private:
  Job(Napi::Env env, std::string label, Work work, Done done);
  Napi::Promise::Deferred deferred_;
  std::string label_;
  Work work_;
  Done done_;
  Failure failure_;
};

// Runs `fn` on a fresh thread that first joins the network namespace at
// `netnsPath` and then exits, so no thread of Node's (main or pool) ever changes
// namespace. An empty path runs `fn` on the calling thread.
void RunInNetns(const std::string &netnsPath, Failure &failure,
                const std::function<void(Failure &)> &fn);

// Closes a native handle when its environment is torn down (worker exit,
// process exit) if neither close() nor the GC got there first.
class EnvCleanup {
 public:
  EnvCleanup(napi_env env, std::function<void()> release);
  ~EnvCleanup();
  void Remove();

 private:
  static void Run(void *arg);
  napi_env env_;
  std::function<void()> release_;
  bool registered_;
};

// BTF type id -> plain JS object as described in btf.ts; undefined when the
// type cannot be described (a kind a map key or a variable never has).
Napi::Value BtfTypeToJs(Napi::Env env, const struct btf *btf, __u32 id);

// The kernel's types an object can relocate against, for libbpf's btf_custom_path
// (see btf.cc); nullptr when the object names none or the kernel has no BTF.
struct KernelBtf {
  int fd = -1;
  std::string path;
  ~KernelBtf() {
    if (fd >= 0) close(fd);
  }
};
std::shared_ptr<const KernelBtf> KernelBtfFor(const struct btf *local);

// Module pieces, registered by addon.cc.
void InitHandles(Napi::Env env, Napi::Object exports);
void InitMap(Napi::Env env, Napi::Object exports, AddonData *data);
void InitProgram(Napi::Env env, Napi::Object exports, AddonData *data);
void InitLink(Napi::Env env, Napi::Object exports, AddonData *data);
void InitSocket(Napi::Env env, Napi::Object exports, AddonData *data);
void InitObject(Napi::Env env, Napi::Object exports);
void InitNetns(Napi::Env env, Napi::Object exports);
void InitRingBuffer(Napi::Env env, Napi::Object exports);
void InitPeerCred(Napi::Env env, Napi::Object exports);

// The fd of a map (program) handle object; throws TypeError for anything else
// and Error if it is closed.
int MapFd(const Napi::Value &value);
int ProgramFd(const Napi::Value &value);
// A new handle object of `kind` owning `fd`.
Napi::Object NewHandle(Napi::Env env, HandleKind kind, int fd);

std::string StringOr(const Napi::Value &value, const std::string &fallback);

}  // namespace nc
