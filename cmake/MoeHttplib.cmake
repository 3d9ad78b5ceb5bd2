# cpp-httplib (Debian's libcpp-httplib-dev) for moe-server and its tests only: moe::moe itself
# does not use it. Debian builds it as a shared library with OpenSSL, zlib and brotli support,
# and its pkg-config file carries the matching CPPHTTPLIB_*_SUPPORT definitions (the header's
# declarations differ without them), so it is found through pkg-config.
if(NOT TARGET PkgConfig::MOE_HTTPLIB)
  find_package(PkgConfig REQUIRED QUIET)
  pkg_check_modules(MOE_HTTPLIB REQUIRED IMPORTED_TARGET GLOBAL cpp-httplib>=0.11)
endif()
find_package(Threads REQUIRED)  # imported per directory
