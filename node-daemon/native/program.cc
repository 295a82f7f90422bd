// ProgramHandle: a BPF program's fd: its info, its code as the kernel holds it
// (BPF_OBJ_GET_INFO_BY_FD) and test runs (BPF_PROG_TEST_RUN, off the event loop,
// optionally in a network namespace and on one CPU). And
// synchronizeRcu(), which waits until no program still runs with what it read
// before the call.
#include "fd_handle.h"

#include <fcntl.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <memory>
#include <vector>

namespace nc {

namespace {

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

std::string Hex(const __u8 *bytes, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; i++) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 15];
  }
  return out;
}

}  // namespace

class ProgramHandle : public FdHandle<ProgramHandle> {
 public:
  static constexpr HandleKind kKind = HandleKind::Program;
  static Napi::Function Define(Napi::Env env);
  explicit ProgramHandle(const Napi::CallbackInfo &info) : FdHandle(info) {}

 private:
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value Code(const Napi::CallbackInfo &info);
  Napi::Value TestRun(const Napi::CallbackInfo &info);
};

Napi::Function ProgramHandle::Define(Napi::Env env) {
  auto props = Common(true);
  props.push_back(InstanceMethod<&ProgramHandle::Info>("info"));
  props.push_back(InstanceMethod<&ProgramHandle::Code>("code"));
  props.push_back(InstanceMethod<&ProgramHandle::TestRun>("testRun"));
  return DefineClass(env, "ProgramHandle", props);
}

Napi::Value ProgramHandle::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_prog_info p = {};
  __u32 len = sizeof(p);
  if (int err = bpf_obj_get_info_by_fd(Fd(env), &p, &len)) Fail(env, "program info", err);
  const char *type = libbpf_bpf_prog_type_str(static_cast<enum bpf_prog_type>(p.type));
  Napi::Object out = Napi::Object::New(env);
  out.Set("kind", "program");
  out.Set("type", type != nullptr ? std::string(type) : "unknown(" + std::to_string(p.type) + ")");
  out.Set("id", p.id);
  out.Set("name", p.name);
  out.Set("tag", Hex(p.tag, sizeof(p.tag)));
  out.Set("btfId", p.btf_id);
  out.Set("runTimeNs", static_cast<double>(p.run_time_ns));
  out.Set("runCount", static_cast<double>(p.run_cnt));
  return out;
}

// code() -> { xlated: Buffer, jited: Buffer, jitedFuncLens: number[], jitedKsyms: bigint[] }:
// what the kernel made of the program, its instructions after the verifier
// (xlated) and the machine code the JIT emitted, with where each of its functions
// starts. Read twice: once for the sizes, once into buffers of those sizes. Root
// only (the kernel hides both otherwise).
Napi::Value ProgramHandle::Code(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_prog_info sizes = {};
  __u32 len = sizeof(sizes);
  if (int err = bpf_obj_get_info_by_fd(Fd(env), &sizes, &len)) Fail(env, "program info", err);

  std::vector<uint8_t> xlated(sizes.xlated_prog_len), jited(sizes.jited_prog_len);
  std::vector<__u32> funcLens(sizes.nr_jited_func_lens);
  std::vector<__u64> ksyms(sizes.nr_jited_ksyms);
  struct bpf_prog_info code = {};
  code.xlated_prog_len = xlated.size();
  code.xlated_prog_insns = reinterpret_cast<__u64>(xlated.data());
  code.jited_prog_len = jited.size();
  code.jited_prog_insns = reinterpret_cast<__u64>(jited.data());
  code.nr_jited_func_lens = funcLens.size();
  code.jited_func_lens = reinterpret_cast<__u64>(funcLens.data());
  code.nr_jited_ksyms = ksyms.size();
  code.jited_ksyms = reinterpret_cast<__u64>(ksyms.data());
  len = sizeof(code);
  if (int err = bpf_obj_get_info_by_fd(Fd(env), &code, &len)) Fail(env, "program code", err);
  // The kernel reports the full sizes again but copies only what fits.
  xlated.resize(std::min<size_t>(xlated.size(), code.xlated_prog_len));
  jited.resize(std::min<size_t>(jited.size(), code.jited_prog_len));

  Napi::Object out = Napi::Object::New(env);
  out.Set("xlated", Napi::Buffer<uint8_t>::Copy(env, xlated.data(), xlated.size()));
  out.Set("jited", Napi::Buffer<uint8_t>::Copy(env, jited.data(), jited.size()));
  Napi::Array lens = Napi::Array::New(env, funcLens.size());
  for (size_t i = 0; i < funcLens.size(); i++) lens.Set(i, funcLens[i]);
  out.Set("jitedFuncLens", lens);
  Napi::Array syms = Napi::Array::New(env, ksyms.size());
  for (size_t i = 0; i < ksyms.size(); i++) syms.Set(i, Napi::BigInt::New(env, static_cast<uint64_t>(ksyms[i])));
  out.Set("jitedKsyms", syms);
  return out;
}

// testRun(data, ctx | null, dataSizeOut, ctxSizeOut, repeat, liveFrames, batchSize, netns)
Napi::Value ProgramHandle::TestRun(const Napi::CallbackInfo &info) {
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

int ProgramFd(const Napi::Value &value) { return ProgramHandle::Of(value, "program")->Fd(value.Env()); }

namespace {

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

void InitProgram(Napi::Env env, Napi::Object exports, AddonData *data) {
  data->handles[static_cast<int>(HandleKind::Program)] = Napi::Persistent(ProgramHandle::Define(env));
  exports.Set("synchronizeRcu", Napi::Function::New(env, SynchronizeRcu, "synchronizeRcu"));
}

}  // namespace nc
