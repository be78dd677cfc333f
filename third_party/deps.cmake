# Build glue for the system libraries Lelantos links (Debian 12 packages; see tools/setup.sh).
# No third-party code lives in this tree.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
pkg_check_modules(H2O REQUIRED IMPORTED_TARGET libh2o-evloop)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(MSGPACK REQUIRED IMPORTED_TARGET msgpack)
pkg_check_modules(YAML REQUIRED IMPORTED_TARGET yaml-0.1)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
pkg_check_modules(ZLIB REQUIRED IMPORTED_TARGET zlib)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
pkg_check_modules(OPENSSL REQUIRED IMPORTED_TARGET openssl)
pkg_check_modules(ARCHIVE REQUIRED IMPORTED_TARGET libarchive)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl) # the etcd client (src/cluster) and the e2e tests
find_library(ROCKSDB_LIB rocksdb REQUIRED)
find_path(ROCKSDB_INCLUDE rocksdb/c.h REQUIRED)
add_library(lel_rocksdb INTERFACE)
target_link_libraries(lel_rocksdb INTERFACE ${ROCKSDB_LIB})
target_include_directories(lel_rocksdb INTERFACE ${ROCKSDB_INCLUDE})
