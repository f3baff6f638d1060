# Warnings as errors for the project's own targets (not for third-party headers).
function(wkvq_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                           -Wno-sign-conversion
                                           -Wno-missing-field-initializers -Werror)
endfunction()
