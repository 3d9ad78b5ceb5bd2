# Compile options for this project's own executables (tests, benchmarks, tools); consumers of
# moe::moe choose their own flags.
function(moe_target_defaults target)
  target_link_libraries(${target} PRIVATE moe::moe)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>)
  if(MOE_NATIVE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
  endif()
  if(MOE_SANITIZE)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${MOE_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer>)
    target_link_options(${target} PRIVATE -fsanitize=${MOE_SANITIZE} -fno-sanitize-recover=all)
  endif()
endfunction()
