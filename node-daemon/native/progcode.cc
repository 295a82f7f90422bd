// What the kernel made of a loaded program: its instructions after the verifier
// (xlated) and the machine code the JIT emitted, with where each of its functions
// starts. Read with BPF_OBJ_GET_INFO_BY_FD, twice: once for the sizes, once into
// buffers of those sizes. Root only (the kernel hides both otherwise).
#include "common.h"

#include <vector>

namespace nc {

namespace {

// programCode(fd, label) -> { xlated: Buffer, jited: Buffer, jitedFuncLens: number[], jitedKsyms: bigint[] }
Napi::Value ProgramCode(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  std::string label = info[1].As<Napi::String>().Utf8Value();
  struct bpf_prog_info sizes = {};
  __u32 len = sizeof(sizes);
  if (int err = bpf_obj_get_info_by_fd(fd, &sizes, &len)) ThrowErrno(env, "program info", err, label);

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
  if (int err = bpf_obj_get_info_by_fd(fd, &code, &len)) ThrowErrno(env, "program code", err, label);
  // A program replaced in between could have grown: keep what fits, as the kernel did.
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

}  // namespace

void InitProgramCode(Napi::Env env, Napi::Object exports) {
  exports.Set("programCode", Napi::Function::New(env, ProgramCode, "programCode"));
}

}  // namespace nc
