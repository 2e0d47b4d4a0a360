# Warnings are errors for our own targets; third-party headers come in as SYSTEM includes.
add_library(recmesh_warnings INTERFACE)
target_compile_options(recmesh_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Werror
  -Wshadow -Wconversion -Wsign-conversion -Wold-style-cast -Wnon-virtual-dtor
  -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough -Wformat=2)
# Deprecated OpenSSL calls must not compile.
target_compile_definitions(recmesh_warnings INTERFACE
  OPENSSL_API_COMPAT=30000 OPENSSL_NO_DEPRECATED)
