# -DWKVQ_FUZZ=ON (or the `fuzz` preset, build-fuzz/) builds the libFuzzer targets of fuzz/ with
# clang: every object instrumented for coverage (fuzzer-no-link) plus ASan and UBSan, the fuzz
# executables linked with libFuzzer's main. Needs clang and libfuzzer-14-dev.
if(WKVQ_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "WKVQ_FUZZ needs clang (libFuzzer), found ${CMAKE_CXX_COMPILER_ID}: "
                        "configure with -DCMAKE_CXX_COMPILER=clang++ or the `fuzz` preset")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
