# A source check of the CUDA backend's launch rule (README, "Adding a kernel"), run by ctest in
# every build (no GPU or nvcc needed): every __global__ kernel under include/moe/kernels/cuda starts
# with kernel_prologue() (kernels are launched with programmatic dependent launch: one that read
# an earlier kernel's output before that wait would race), and no code launches with <<< >>>
# (cuda_detail::launch is the one launch path). cmake -DSOURCE_DIR=<repository> -P this-file.
file(GLOB_RECURSE headers "${SOURCE_DIR}/include/moe/*.cuh" "${SOURCE_DIR}/include/moe/*.hpp")
set(kernels 0)
set(problems "")
foreach(h IN LISTS headers)
  file(STRINGS "${h}" launches REGEX "<<<")
  foreach(line IN LISTS launches)
    if(NOT line MATCHES "^[ ]*//")
      string(APPEND problems "\n  ${h}: a <<< >>> launch: ${line}")
    endif()
  endforeach()
  file(READ "${h}" text)
  string(REPLACE ";" "<semicolon>" text "${text}")  # ';' separates CMake list elements
  # Kernels (a line starting with __global__, or static __global__ for the non-template ones;
  # parameter lists hold no braces), and those whose body starts with kernel_prologue().
  string(REGEX MATCHALL "\n(static )?__global__" all "${text}")
  string(REGEX MATCHALL "\n(static )?__global__[^{]*{[ \n]*kernel_prologue\\(\\)<semicolon>" good "${text}")
  list(LENGTH all n_all)
  list(LENGTH good n_good)
  math(EXPR kernels "${kernels} + ${n_all}")
  if(NOT n_all EQUAL n_good)
    math(EXPR missing "${n_all} - ${n_good}")
    string(APPEND problems "\n  ${h}: ${missing} of its ${n_all} kernels do not start with kernel_prologue()")
  endif()
endforeach()
if(kernels LESS 30)
  string(APPEND problems "\n  found only ${kernels} kernels under ${SOURCE_DIR}/include/moe: the pattern is out of date")
endif()
if(problems)
  message(FATAL_ERROR "CUDA launch rule broken:${problems}")
endif()
message(STATUS "${kernels} CUDA kernels, each starting with kernel_prologue(); no <<< >>> launches")
