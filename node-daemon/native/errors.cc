// libbpf log capture, errors, promise workers, namespace threads and the
// environment cleanup hook shared by every native handle.
#include "common.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>

namespace nc {

namespace {
thread_local LibbpfCapture *current_capture = nullptr;
bool debug_print = false;
}  // namespace

LibbpfCapture::LibbpfCapture() : outer_(current_capture) { current_capture = this; }

LibbpfCapture::~LibbpfCapture() { current_capture = outer_; }

std::string LibbpfCapture::Take() {
  std::string text;
  text.swap(text_);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

void LibbpfCapture::Install() {
  const char *env = getenv("NETCUBE_LIBBPF_DEBUG");
  debug_print = env != nullptr && strcmp(env, "1") == 0;
  libbpf_set_print(Print);
}

int LibbpfCapture::Print(enum libbpf_print_level level, const char *fmt, va_list ap) {
  if (debug_print) {
    va_list copy;
    va_copy(copy, ap);
    vfprintf(stderr, fmt, copy);
    va_end(copy);
  }
  LibbpfCapture *capture = current_capture;
  if (capture == nullptr || level != LIBBPF_WARN) return 0;
  char line[1024];
  int n = vsnprintf(line, sizeof(line), fmt, ap);
  if (n > 0) capture->text_.append(line, std::min<size_t>(n, sizeof(line) - 1));
  return 0;
}

Napi::Error MakeError(Napi::Env env, const Failure &failure, const std::string &label) {
  char message[256];
  libbpf_strerror(failure.err, message, sizeof(message));
  auto *data = env.GetInstanceData<AddonData>();
  if (data == nullptr || data->makeError.IsEmpty()) {
    return Napi::Error::New(env, label + ": " + failure.op + " failed: " + message);
  }
  Napi::Object info = Napi::Object::New(env);
  info.Set("op", failure.op);
  info.Set("errno", failure.err);
  info.Set("message", message);
  info.Set("label", label);
  info.Set("log", failure.log);
  if (!failure.program.empty()) {
    info.Set("program", failure.program);
    info.Set("verifierLog", failure.verifierLog);
  }
  Napi::Value error = data->makeError.Call({info});
  return Napi::Error(env, error);
}

void ThrowFailure(Napi::Env env, const Failure &failure, const std::string &label) {
  throw MakeError(env, failure, label);
}

void ThrowErrno(Napi::Env env, const char *op, int err, const std::string &label,
                LibbpfCapture *capture) {
  Failure failure;
  failure.Set(op, err);
  if (capture != nullptr) failure.log = capture->Take();
  ThrowFailure(env, failure, label);
}

Napi::Promise Job::Start(Napi::Env env, std::string label, Work work, Done done) {
  auto *job = new Job(env, std::move(label), std::move(work), std::move(done));
  Napi::Promise promise = job->deferred_.Promise();
  job->Queue();
  return promise;
}

Job::Job(Napi::Env env, std::string label, Work work, Done done)
    : Napi::AsyncWorker(env, "netcube:bpf"),
      deferred_(Napi::Promise::Deferred::New(env)),
      label_(std::move(label)),
      work_(std::move(work)),
      done_(std::move(done)) {}

void Job::Execute() {
  // The verifier gives up with EAGAIN when a signal is pending for the loading
  // thread (libbpf tries 5 times), a test run with EINTR: a signal sent to the
  // process (a child's SIGCHLD) is given to any thread that does not block it, and
  // on a busy machine, while the main thread is off its CPU with one pending, that is
  // a pool thread inside the kernel. Blocked here, they wait for the other threads;
  // a namespace thread (RunInNetns) inherits the mask. Faults still raise theirs.
  sigset_t async, previous;
  sigfillset(&async);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS}) sigdelset(&async, sig);
  pthread_sigmask(SIG_BLOCK, &async, &previous);
  LibbpfCapture capture;
  work_(failure_);
  if (failure_.Failed() && failure_.log.empty()) failure_.log = capture.Take();
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

void Job::OnOK() {
  Napi::Env env = Env();
  try {
    if (failure_.Failed()) {
      deferred_.Reject(MakeError(env, failure_, label_).Value());
    } else {
      deferred_.Resolve(done_(env));
    }
  } catch (const Napi::Error &error) {
    deferred_.Reject(error.Value());
  }
}

void Job::OnError(const Napi::Error &error) { deferred_.Reject(error.Value()); }

void RunInNetns(const std::string &netnsPath, Failure &failure,
                const std::function<void(Failure &)> &fn) {
  if (netnsPath.empty()) {
    fn(failure);
    return;
  }
  auto body = [&] {
    LibbpfCapture capture;
    int fd = open(netnsPath.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return failure.Set("open network namespace", errno);
    int rc = setns(fd, CLONE_NEWNET);
    int err = errno;
    close(fd);
    if (rc != 0) return failure.Set("enter network namespace", err);
    fn(failure);
    if (failure.Failed() && failure.log.empty()) failure.log = capture.Take();
  };
  try {
    std::thread thread(body);
    thread.join();
  } catch (const std::system_error &error) {
    failure.Set("start a namespace thread", error.code().value());
  }
}

EnvCleanup::EnvCleanup(napi_env env, std::function<void()> release)
    : env_(env), release_(std::move(release)), registered_(true) {
  napi_add_env_cleanup_hook(env_, Run, this);
}

EnvCleanup::~EnvCleanup() { Remove(); }

void EnvCleanup::Remove() {
  if (!registered_) return;
  registered_ = false;
  napi_remove_env_cleanup_hook(env_, Run, this);
}

void EnvCleanup::Run(void *arg) {
  auto *self = static_cast<EnvCleanup *>(arg);
  // Node drops the hook itself after running it.
  self->registered_ = false;
  self->release_();
}

std::string StringOr(const Napi::Value &value, const std::string &fallback) {
  return value.IsString() ? value.As<Napi::String>().Utf8Value() : fallback;
}

}  // namespace nc
