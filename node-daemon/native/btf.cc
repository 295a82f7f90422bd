// BTF type -> plain JS description (the BtfType union of btf.ts). Encoding and
// decoding values happens in TypeScript; this only walks libbpf's type graph.
#include "common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace nc {

namespace {

// Value types nest a few levels at most; a deeper chain means corrupt BTF.
constexpr int kMaxDepth = 64;

struct Unsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Napi::Value Describe(Napi::Env env, const struct btf *btf, __u32 id, int depth);

Napi::Value EnumValue(Napi::Env env, long long value, bool isSigned, unsigned long long raw) {
  constexpr double kMaxSafe = 9007199254740991.0;
  if (isSigned) {
    if (static_cast<double>(value) <= kMaxSafe && static_cast<double>(value) >= -kMaxSafe) {
      return Napi::Number::New(env, static_cast<double>(value));
    }
    return Napi::BigInt::New(env, static_cast<int64_t>(value));
  }
  if (static_cast<double>(raw) <= kMaxSafe) return Napi::Number::New(env, static_cast<double>(raw));
  return Napi::BigInt::New(env, static_cast<uint64_t>(raw));
}

Napi::Object DescribeComposite(Napi::Env env, const struct btf *btf, const struct btf_type *t,
                               const char *name, int depth) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("kind", btf_is_struct(t) ? "struct" : "union");
  out.Set("name", name);
  out.Set("size", t->size);
  Napi::Array members = Napi::Array::New(env, btf_vlen(t));
  const struct btf_member *m = btf_members(t);
  for (__u16 i = 0; i < btf_vlen(t); i++, m++) {
    Napi::Object member = Napi::Object::New(env);
    __u32 bitOffset = btf_member_bit_offset(t, i);
    __u32 bitSize = btf_member_bitfield_size(t, i);
    member.Set("name", btf__name_by_offset(btf, m->name_off));
    member.Set("offset", bitOffset / 8);
    if (bitSize != 0 || bitOffset % 8 != 0) {
      member.Set("bitOffset", bitOffset % 8);
      member.Set("bitSize", bitSize);
    }
    member.Set("type", Describe(env, btf, m->type, depth + 1));
    members.Set(i, member);
  }
  out.Set("members", members);
  return out;
}

Napi::Object DescribeEnum(Napi::Env env, const struct btf *btf, const struct btf_type *t,
                          const char *name) {
  Napi::Object out = Napi::Object::New(env);
  bool isSigned = btf_kflag(t);
  out.Set("kind", "enum");
  out.Set("name", name);
  out.Set("size", t->size);
  out.Set("signed", isSigned);
  Napi::Array values = Napi::Array::New(env, btf_vlen(t));
  for (__u16 i = 0; i < btf_vlen(t); i++) {
    Napi::Object entry = Napi::Object::New(env);
    if (btf_is_enum(t)) {
      const struct btf_enum *e = btf_enum(t) + i;
      entry.Set("name", btf__name_by_offset(btf, e->name_off));
      entry.Set("value", EnumValue(env, e->val, isSigned, static_cast<__u32>(e->val)));
    } else {
      const struct btf_enum64 *e = btf_enum64(t) + i;
      __u64 raw = btf_enum64_value(e);
      entry.Set("name", btf__name_by_offset(btf, e->name_off));
      entry.Set("value", EnumValue(env, static_cast<long long>(raw), isSigned, raw));
    }
    values.Set(i, entry);
  }
  out.Set("values", values);
  return out;
}

Napi::Value Describe(Napi::Env env, const struct btf *btf, __u32 id, int depth) {
  if (depth > kMaxDepth) throw Unsupported("nesting too deep");
  const char *typedefName = nullptr;
  const struct btf_type *t = btf__type_by_id(btf, id);
  // Typedefs and qualifiers carry no layout; keep the outermost typedef's name.
  while (t != nullptr && (btf_is_typedef(t) || btf_is_mod(t) || btf_is_type_tag(t))) {
    if (btf_is_typedef(t) && typedefName == nullptr) typedefName = btf__name_by_offset(btf, t->name_off);
    id = t->type;
    t = btf__type_by_id(btf, id);
  }
  if (t == nullptr || id == 0) throw Unsupported("void or missing type");
  const char *ownName = btf__name_by_offset(btf, t->name_off);
  const char *name = typedefName != nullptr ? typedefName : ownName;
  Napi::Object out = Napi::Object::New(env);
  switch (btf_kind(t)) {
    case BTF_KIND_INT: {
      __u8 encoding = btf_int_encoding(t);
      out.Set("kind", "int");
      out.Set("name", name);
      out.Set("size", t->size);
      out.Set("signed", (encoding & BTF_INT_SIGNED) != 0);
      // clang encodes plain `char` as a signed 1-byte int; its name is what
      // tells a string from a byte array (__u8 mac[6]).
      if ((encoding & BTF_INT_CHAR) != 0 || strcmp(ownName, "char") == 0) out.Set("char", true);
      if ((encoding & BTF_INT_BOOL) != 0) out.Set("bool", true);
      return out;
    }
    case BTF_KIND_FLOAT:
      out.Set("kind", "float");
      out.Set("name", name);
      out.Set("size", t->size);
      return out;
    case BTF_KIND_PTR:
      out.Set("kind", "ptr");
      out.Set("size", 8);
      return out;
    case BTF_KIND_ARRAY: {
      const struct btf_array *array = btf_array(t);
      __s64 size = btf__resolve_size(btf, id);
      if (size < 0) throw Unsupported("array of unknown size");
      out.Set("kind", "array");
      // An array has no name of its own; a typedef's names a typed field (nc_mac_t).
      if (typedefName != nullptr) out.Set("name", typedefName);
      out.Set("elem", Describe(env, btf, array->type, depth + 1));
      out.Set("length", array->nelems);
      out.Set("size", static_cast<double>(size));
      return out;
    }
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION:
      return DescribeComposite(env, btf, t, name, depth);
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64:
      return DescribeEnum(env, btf, t, name);
    default:
      throw Unsupported("unsupported BTF kind");
  }
}

}  // namespace

Napi::Value BtfTypeToJs(Napi::Env env, const struct btf *btf, __u32 id) {
  if (btf == nullptr || id == 0) return env.Undefined();
  try {
    return Describe(env, btf, id, 0);
  } catch (const Unsupported &) {
    return env.Undefined();
  }
}

namespace {

// libbpf matches a local type to the kernel's by kind and essential name: the name
// less its last "___flavor" suffix, "x___y" with x and y not underscores (libbpf's
// bpf_core_essential_name_len).
std::string EssentialName(const char *name) {
  std::string n(name);
  for (long i = static_cast<long>(n.size()) - 5; i >= 0; i--) {
    if (n[i] != '_' && n.compare(i + 1, 3, "___") == 0 && n[i + 4] != '_') return n.substr(0, i + 1);
  }
  return n;
}

bool CanBeRelocated(const struct btf_type *t) {
  switch (btf_kind(t)) {
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION:
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64:
    case BTF_KIND_TYPEDEF:
    case BTF_KIND_FWD:
    case BTF_KIND_INT:
    case BTF_KIND_FLOAT:
      return true;
    default:
      return false;
  }
}

// Calls f on every type id `t` refers to (as a mutable reference, to renumber it).
template <typename F>
void ForEachRef(struct btf_type *t, F &&f) {
  switch (btf_kind(t)) {
    case BTF_KIND_PTR:
    case BTF_KIND_TYPEDEF:
    case BTF_KIND_VOLATILE:
    case BTF_KIND_CONST:
    case BTF_KIND_RESTRICT:
    case BTF_KIND_TYPE_TAG:
    case BTF_KIND_FUNC:
    case BTF_KIND_VAR:
    case BTF_KIND_DECL_TAG:
      f(t->type);
      break;
    case BTF_KIND_ARRAY:
      f(btf_array(t)->type);
      f(btf_array(t)->index_type);
      break;
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION: {
      struct btf_member *m = btf_members(t);
      for (__u16 i = 0; i < btf_vlen(t); i++) f(m[i].type);
      break;
    }
    case BTF_KIND_FUNC_PROTO: {
      f(t->type);
      struct btf_param *p = btf_params(t);
      for (__u16 i = 0; i < btf_vlen(t); i++) f(p[i].type);
      break;
    }
    case BTF_KIND_DATASEC: {
      struct btf_var_secinfo *v = btf_var_secinfos(t);
      for (__u16 i = 0; i < btf_vlen(t); i++) f(v[i].type);
      break;
    }
    default:
      break;
  }
}

// `bytes` in a sealed memfd, or nullptr.
std::shared_ptr<const KernelBtf> Sealed(const void *bytes, size_t size) {
  int fd = memfd_create("netcube-kernel-btf", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return nullptr;
  auto file = std::make_shared<KernelBtf>();
  file->fd = fd;
  for (size_t off = 0; off < size;) {
    ssize_t w = write(fd, static_cast<const char *>(bytes) + off, size - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return nullptr;
    off += static_cast<size_t>(w);
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) return nullptr;
  file->path = "/proc/self/fd/" + std::to_string(fd);
  return file;
}

// The kernel's types named `names`, with every type they refer to, renumbered
// into a BTF of their own.
std::shared_ptr<const KernelBtf> Extract(const struct btf *kernel, const std::set<std::string> &names) {
  __u32 count = btf__type_cnt(kernel);
  // Per kernel type id: 0 when not needed; first marked needed (1), then its id in `out`.
  std::vector<__u32> renumbered(count, 0);
  std::vector<__u32> stack;
  for (__u32 id = 1; id < count; id++) {
    const struct btf_type *t = btf__type_by_id(kernel, id);
    if (CanBeRelocated(t) && t->name_off != 0 && names.count(EssentialName(btf__name_by_offset(kernel, t->name_off)))) {
      renumbered[id] = 1;
      stack.push_back(id);
    }
  }
  while (!stack.empty()) {
    __u32 id = stack.back();
    stack.pop_back();
    ForEachRef(const_cast<struct btf_type *>(btf__type_by_id(kernel, id)), [&](__u32 &ref) {
      if (ref != 0 && ref < count && renumbered[ref] == 0) {
        renumbered[ref] = 1;
        stack.push_back(ref);
      }
    });
  }
  struct btf *out = btf__new_empty();
  std::shared_ptr<const KernelBtf> file;
  bool ok = out != nullptr;
  for (__u32 id = 1; ok && id < count; id++) {
    if (renumbered[id] == 0) continue;
    int added = btf__add_type(out, kernel, btf__type_by_id(kernel, id));
    ok = added > 0;
    renumbered[id] = static_cast<__u32>(added);
  }
  for (__u32 id = 1; ok && id < btf__type_cnt(out); id++) {
    ForEachRef(const_cast<struct btf_type *>(btf__type_by_id(out, id)), [&](__u32 &ref) { ref = ref < count ? renumbered[ref] : 0; });
  }
  if (ok) {
    __u32 size = 0;
    const void *raw = btf__raw_data(out, &size);
    if (raw != nullptr) file = Sealed(raw, size);
  }
  btf__free(out);
  return file;
}

}  // namespace

// For every object with CO-RE relocations libbpf reads and indexes the kernel's
// whole BTF (5 MB and more here, 4 KiB per read from sysfs): measured, that was
// 40% of the time a small cube's load took, and the page faults of it much of
// what a busy host spent. An object names the types it could relocate against in
// its own BTF; the kernel's types of those names, with all they refer to, are a
// few KiB for a packet program. Made once per set of names (from the kernel's
// BTF, parsed once per process), kept in a sealed memfd, given to libbpf as
// btf_custom_path, against which alone it then relocates (never a module's BTF,
// which no packet program needs).
std::shared_ptr<const KernelBtf> KernelBtfFor(const struct btf *local) {
  if (local == nullptr) return nullptr;
  std::set<std::string> names;
  for (__u32 id = 1; id < btf__type_cnt(local); id++) {
    const struct btf_type *t = btf__type_by_id(local, id);
    if (CanBeRelocated(t) && t->name_off != 0) names.insert(EssentialName(btf__name_by_offset(local, t->name_off)));
  }
  if (names.empty()) return nullptr;
  std::string key;
  for (const auto &n : names) key += n + '\n';

  // A bounded cache: a set evicted while an object still holds it stays open until that object closes.
  static constexpr size_t kMaxCached = 32;
  static std::mutex mutex;
  static std::deque<std::pair<std::string, std::shared_ptr<const KernelBtf>>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  for (const auto &[k, file] : cache) {
    if (k == key) return file;
  }
  // The kernel's whole BTF, parsed once and kept (some 7 MB) for the next set of names.
  static struct btf *kernel = btf__load_vmlinux_btf();
  if (kernel == nullptr) return nullptr;
  auto file = Extract(kernel, names);
  if (file == nullptr) return nullptr;
  if (cache.size() == kMaxCached) cache.pop_front();
  cache.emplace_back(std::move(key), file);
  return file;
}

}  // namespace nc
