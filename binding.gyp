# Native Node-API addon: the CPU core (core/src) + the N-API binding (bindings/napi).
# Output: build/Release/hwkv.node. Sources are listed by bindings/napi/sources.cjs, so new core files are
# picked up automatically. The AVX2 kernels (core/src/simd/avx2) are built as a separate static library
# with their own ISA flags (x64 only) so that nothing else is compiled with -mavx2; the core dispatches to
# them at run time after checking the CPU. core/src/simd/wasm is never compiled here.
{
  'variables': {
    'hwkv_avx2_count%': '<!(node bindings/napi/sources.cjs avx2 --count)',
  },
  'target_defaults': {
    'include_dirs': [
      'core/include',
      'core/src',
    ],
    'defines': [
      'NAPI_VERSION=8',
      'NAPI_DISABLE_CPP_EXCEPTIONS',
    ],
    # The core uses C++ exceptions internally (they never cross the C ABI), so re-enable them.
    'cflags!': ['-fno-exceptions', '-fno-rtti'],
    'cflags_cc!': ['-fno-exceptions', '-fno-rtti', '-std=gnu++17'],
    'cflags': ['-O3', '-fvisibility=hidden', '-fPIC'],
    'cflags_cc': ['-std=c++17', '-fexceptions', '-frtti', '-fvisibility-inlines-hidden'],
    'xcode_settings': {
      'GCC_ENABLE_CPP_EXCEPTIONS': 'YES',
      'GCC_ENABLE_CPP_RTTI': 'YES',
      'GCC_SYMBOLS_PRIVATE_EXTERN': 'YES',
      'CLANG_CXX_LANGUAGE_STANDARD': 'c++17',
      'GCC_OPTIMIZATION_LEVEL': '3',
      'MACOSX_DEPLOYMENT_TARGET': '11.0',
    },
    'msvs_settings': {
      'VCCLCompilerTool': {
        'ExceptionHandling': 1,
        'RuntimeTypeInfo': 'true',
        'AdditionalOptions': ['/std:c++17', '/O2'],
      },
    },
    'conditions': [
      ['target_arch=="x64" and hwkv_avx2_count not in (0, "0")', {
        'defines': ['HWKV_HAVE_AVX2=1'],
      }],
    ],
  },
  'targets': [
    {
      'target_name': 'hwkv',
      'sources': [
        '<!@(node bindings/napi/sources.cjs core)',
        '<!@(node bindings/napi/sources.cjs napi)',
      ],
      'include_dirs': [
        '<!(node -p "require(\'node-addon-api\').include_dir")',
      ],
      'conditions': [
        ['target_arch=="x64" and hwkv_avx2_count not in (0, "0")', {
          'dependencies': ['hwkv_avx2'],
        }],
        ['OS=="linux"', {
          'libraries': ['-ldl', '-lpthread'],
          # Bind every symbol at load time: a missing symbol makes require() fail with a clear error
          # (and the library falls back to WASM) instead of killing the process at the first call.
          'ldflags': ['-Wl,-z,now'],
        }],
      ],
    },
  ],
  'conditions': [
    ['target_arch=="x64" and hwkv_avx2_count not in (0, "0")', {
      'targets': [
        {
          'target_name': 'hwkv_avx2',
          'type': 'static_library',
          'sources': [
            '<!@(node bindings/napi/sources.cjs avx2)',
          ],
          'cflags': ['-mavx2', '-mfma', '-mf16c'],
          'xcode_settings': {
            'OTHER_CFLAGS': ['-mavx2', '-mfma', '-mf16c'],
          },
          'msvs_settings': {
            'VCCLCompilerTool': {
              'EnableEnhancedInstructionSet': '5',  # /arch:AVX2 (implies FMA and F16C code generation)
            },
          },
        },
      ],
    }],
  ],
}
