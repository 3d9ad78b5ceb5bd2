# Compile options for this project's own executables (tests, benchmarks, tools); consumers of
# moe::moe choose their own flags.
# moe_target_defaults(target [STANDALONE]): STANDALONE compiles the graph in the target's own
# translation units instead of linking instances/ (a target built for another instruction set:
# the kernels' inline functions would otherwise exist twice under one name, and the linker would
# keep either copy).
function(moe_target_defaults target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "STANDALONE" "" "")
  target_link_libraries(${target} PRIVATE moe::moe)
  # The graph compiled once (instances/; host backends, and backend::cuda in CUDA builds): declared
  # extern here, linked from there.
  if(TARGET moe_graph_instances AND NOT arg_STANDALONE AND NOT target MATCHES "^moe_(graph|cuda_format)_instances$")
    target_compile_definitions(${target} PRIVATE MOE_EXTERN_GRAPH=1)
    target_link_libraries(${target} PRIVATE moe_graph_instances)
  endif()
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>)
  if(MOE_NATIVE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=native>
                                             $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-march=native>)
  endif()
  # nvcc compiling host code (tools built for --backend cuda): GCC's unroll pragmas in the cpu
  # kernels are not nvcc's.
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-diag-suppress=1675>)
  if(MOE_SANITIZE)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:${MOE_SANITIZE_OPT} -fsanitize=${MOE_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer>)
    target_link_options(${target} PRIVATE -fsanitize=${MOE_SANITIZE} -fno-sanitize-recover=all)
  endif()
endfunction()

# moe_tool_cuda(target sources...): in a CUDA build, the tool's sources are compiled by nvcc (so
# they instantiate the graph for backend::cuda too, behind --backend cuda) and the tool joins
# moe_cuda_targets, which CI compiles without a GPU.
function(moe_tool_cuda target)
  if(MOE_ENABLE_CUDA)
    set_source_files_properties(${ARGN} TARGET_DIRECTORY ${target} PROPERTIES LANGUAGE CUDA)
    set_target_properties(${target} PROPERTIES LINKER_LANGUAGE CXX)
    add_dependencies(moe_cuda_targets ${target})
    moe_use_cuda_format_instances(${target})
  endif()
endfunction()

# moe_use_cuda_format_instances(target): the target's CUDA sources take the per-format kernel
# instances from instances/ (moe_cuda_format_instances) instead of compiling all 17 formats' kernels
# themselves (kernels/cuda/format_instances.cuh).
function(moe_use_cuda_format_instances target)
  target_compile_definitions(${target} PRIVATE MOE_CUDA_FORMAT_INSTANCES=1)
  target_link_libraries(${target} PRIVATE moe_cuda_format_instances)
endfunction()

