# Compile options for this project's own executables (tests, benchmarks, tools); consumers of
# moe::moe choose their own flags.
function(moe_target_defaults target)
  target_link_libraries(${target} PRIVATE moe::moe)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>)
  if(MOE_NATIVE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
  endif()
  if(MOE_SANITIZE)
    # -O0: ASan+UBSan at -O3 compile 3-5x slower (6 vs 21 minutes for the suite on 2 cores); the
    # tests run 30 s longer, and sanitizers report the same errors.
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-O0 -fsanitize=${MOE_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer>)
    target_link_options(${target} PRIVATE -fsanitize=${MOE_SANITIZE} -fno-sanitize-recover=all)
  endif()
endfunction()
