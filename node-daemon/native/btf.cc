// BTF type -> plain JS description (the BtfType union of btf.ts). Encoding and
// decoding values happens in TypeScript; this only walks libbpf's type graph.
#include "common.h"

#include <cstring>
#include <stdexcept>

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

}  // namespace nc
