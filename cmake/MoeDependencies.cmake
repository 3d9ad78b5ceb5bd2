# Finds moecpp's dependencies (all Debian packages) and links them into an INTERFACE target.
# Shared by the build tree and by the installed package config.
include(CMakeFindDependencyMacro)
find_dependency(Eigen3 3.4 NO_MODULE)
# Debian builds xsimd with xtl support and its exported target links `xtl`.
find_dependency(xtl)
find_dependency(xsimd 8.1)
find_dependency(fmt 9)
find_dependency(nlohmann_json 3.11)
# MOE_USE_OPENMP (default ON): link OpenMP into moe::moe when it is found. OFF builds the library
# serial (core/parallel.hpp runs every loop on the calling thread). The ThreadSanitizer build
# (scripts/test.sh) turns it off: GCC's libgomp is not built with TSan, so its barriers and task
# queues are invisible to TSan and every OpenMP region reports races that are not there; clang's
# libomp needs the Archer OMPT tool loaded at run time to be TSan-clean. Serial kernels leave what
# TSan is there for, the library's own std::thread use (sessions on threads sharing a Model, the
# tokenizer's shared cache, cancellation flags), fully visible.
# OpenMP is still looked for when it is off: an installed moecpp configured with it ON links
# OpenMP::OpenMP_CXX, which must then exist in the consumer's project.
if(NOT DEFINED MOE_USE_OPENMP)
  set(MOE_USE_OPENMP ON CACHE BOOL "Use OpenMP in moe::moe when it is found")
endif()
find_package(OpenMP COMPONENTS CXX QUIET)
find_package(PkgConfig REQUIRED QUIET)
if(NOT TARGET PkgConfig::MOE_PCRE2)
  pkg_check_modules(MOE_PCRE2 REQUIRED IMPORTED_TARGET GLOBAL libpcre2-8)
endif()
if(NOT TARGET PkgConfig::MOE_UTF8PROC)
  pkg_check_modules(MOE_UTF8PROC REQUIRED IMPORTED_TARGET GLOBAL libutf8proc)
endif()

function(moe_link_dependencies target)
  # fmt as Debian's compiled library: its header-only mode compiles fmt's formatting core into
  # every translation unit (3.5 s each at -O3).
  target_link_libraries(${target} INTERFACE
    Eigen3::Eigen xsimd fmt::fmt nlohmann_json::nlohmann_json
    PkgConfig::MOE_PCRE2 PkgConfig::MOE_UTF8PROC)
  target_compile_definitions(${target} INTERFACE PCRE2_CODE_UNIT_WIDTH=8)
  if(MOE_USE_OPENMP AND OpenMP_CXX_FOUND)
    target_link_libraries(${target} INTERFACE OpenMP::OpenMP_CXX)
    # OpenMP::OpenMP_CXX's flags reach C++ sources only; host code nvcc compiles (a tool built
    # for --backend cuda) runs the cpu backend too and needs them through -Xcompiler.
    target_compile_options(${target} INTERFACE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-fopenmp>)
  endif()
endfunction()
