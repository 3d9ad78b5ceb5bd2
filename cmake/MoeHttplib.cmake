# cpp-httplib (Debian's libcpp-httplib-dev) for moe-server and its tests only: moe::moe itself
# does not use it. Debian builds it as a shared library with OpenSSL, zlib and brotli support,
# and its pkg-config file carries the matching CPPHTTPLIB_*_SUPPORT definitions (the header's
# declarations differ without them), so it is found through pkg-config.
#
# Where it is not installed (a GPU machine without the Debian package) the server and its tests
# are left out with a message, so the rest still configures; scripts/install-deps.sh installs it
# and scripts/test.sh configures with -DMOE_REQUIRE_HTTPLIB=ON, so the suite never skips them.
option(MOE_REQUIRE_HTTPLIB "Fail the configure step when cpp-httplib is missing" OFF)
if(NOT TARGET PkgConfig::MOE_HTTPLIB)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(MOE_HTTPLIB QUIET IMPORTED_TARGET GLOBAL cpp-httplib>=0.11)
  endif()
  if(NOT TARGET PkgConfig::MOE_HTTPLIB)
    if(MOE_REQUIRE_HTTPLIB)
      message(FATAL_ERROR "cpp-httplib >= 0.11 not found (Debian: libcpp-httplib-dev; scripts/install-deps.sh installs it)")
    endif()
    message(STATUS "cpp-httplib not found: moe-server and its tests are not built")
  endif()
endif()
find_package(Threads REQUIRED)  # imported per directory
