# Warnings as errors for the project's own targets (not for third-party headers).
function(wkvq_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                           -Wno-sign-conversion
                                           -Wno-missing-field-initializers -Werror)
  # clang (the fuzz build): its F16C intrinsics are macros with compound literals, and the
  # GCC-only warning names in our pragmas are unknown to it.
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    target_compile_options(${target} PRIVATE -Wno-c99-extensions -Wno-unknown-warning-option)
  endif()
endfunction()
