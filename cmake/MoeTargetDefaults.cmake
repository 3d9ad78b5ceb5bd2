# Compile options for this project's own executables (tests, benchmarks, tools); consumers of
# moe::moe choose their own flags.
function(moe_target_defaults target)
  target_link_libraries(${target} PRIVATE moe::moe)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>)
  if(MOE_NATIVE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
  endif()
  if(MOE_SANITIZE)
    # -O1: sanitizers find the same errors there, and ASan+UBSan at -O3 compiles 2-3x slower.
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-O1 -fsanitize=${MOE_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer>)
    target_link_options(${target} PRIVATE -fsanitize=${MOE_SANITIZE} -fno-sanitize-recover=all)
  endif()
endfunction()
