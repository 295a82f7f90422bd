{
  "targets": [
    {
      "target_name": "netcube_bpf",
      "sources": [
        "native/addon.cc",
        "native/btf.cc",
        "native/errors.cc",
        "native/handle.cc",
        "native/netns.cc",
        "native/object.cc",
        "native/progcode.cc",
        "native/ringbuf.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
                    "<!@(pkg-config --cflags libbpf)"],
      "libraries": ["<!@(pkg-config --libs libbpf)"]
    }
  ]
}
