{
  # The native AdamW engine (train/optimizer/native/adamw.c): `npm run build:native`, or `npm ci`'s
  # install script. -ffp-contract=off and no fast-math: the compiler fuses and reassociates nothing,
  # so the kernels (no FMA of their own) round where the graph does (train/optimizer/adamw.ts). The vector kernels get
  # their instruction sets from function attributes, chosen at run time: no -march here, so the
  # binary runs on any CPU of its architecture.
  "targets": [
    {
      "target_name": "bridgetower_adamw",
      "sources": ["train/optimizer/native/adamw.c"],
      "cflags": ["-O3", "-ffp-contract=off", "-fno-fast-math", "-pthread", "-std=c11", "-Wall", "-Wextra"],
      "cflags!": ["-O2", "-O1", "-Os", "-ffast-math"],
      "ldflags": ["-pthread"],
      "xcode_settings": {
        "OTHER_CFLAGS": ["-O3", "-ffp-contract=off", "-fno-fast-math"]
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "AdditionalOptions": ["/fp:precise"] }
      }
    }
  ]
}
