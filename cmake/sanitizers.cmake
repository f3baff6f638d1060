# -DWKVQ_SANITIZE=ON (or the `asan` preset) builds everything with ASan + UBSan.
if(WKVQ_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
