# Warnings are errors for our own targets; third-party headers come in as SYSTEM includes.
add_library(recmesh_warnings INTERFACE)
target_compile_options(recmesh_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Werror
  -Wshadow -Wconversion -Wsign-conversion -Wold-style-cast -Wnon-virtual-dtor
  -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough -Wformat=2)
# Deprecated OpenSSL calls must not compile.
target_compile_definitions(recmesh_warnings INTERFACE
  OPENSSL_API_COMPAT=30000 OPENSSL_NO_DEPRECATED)
# GCC 12 at -O2/-O3 reports -Wrestrict on ordinary std::string concatenation inside libstdc++
# (GCC bug 105329); the warning says nothing about our code there, so it is off for GCC 12 only.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12
   AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(recmesh_warnings INTERFACE -Wno-restrict)
endif()
