# client-core as the library an app links (docs/client-api.md, "Building and linking"):
#  - otsync/version.h, generated from the project's VERSION;
#  - libotsync_client.so (target otsync_client_shared), made of the very objects of the
#    static otsync_client (which the tests and tools link): PIC, hidden visibility, and a
#    version script so that the dynamic symbol table holds the otsync_* functions alone;
#  - the install (component "client"): the C header, the .so, pkg-config and CMake files.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# otsync/version.h: OTSYNC_VERSION_MAJOR/MINOR/PATCH/STRING, included by client.h.
set(otsync_client_gen_include ${CMAKE_CURRENT_BINARY_DIR}/include)
configure_file(include/otsync/version.h.in ${otsync_client_gen_include}/otsync/version.h @ONLY)
target_include_directories(otsync_client PUBLIC ${otsync_client_gen_include})

# Every object that goes into the shared library is position-independent and hidden unless
# marked OTSYNC_API (client.h); otsync_shared's objects are set the same in shared/.
set_target_properties(otsync_client PROPERTIES
    POSITION_INDEPENDENT_CODE ON
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)

# libotsync_client.so: otsync_client's objects; linking the archive as well brings its
# dependencies (otsync_shared, SQLite, libsodium, OpenSSL) and adds no object twice.
add_library(otsync_client_shared SHARED $<TARGET_OBJECTS:otsync_client>)
target_link_libraries(otsync_client_shared PRIVATE otsync_client)
target_include_directories(otsync_client_shared INTERFACE
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<BUILD_INTERFACE:${otsync_client_gen_include}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
set(otsync_client_map ${CMAKE_CURRENT_SOURCE_DIR}/exports.map)
set_target_properties(otsync_client_shared PROPERTIES
    OUTPUT_NAME otsync_client
    EXPORT_NAME client
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}
    LINKER_LANGUAGE CXX
    LINK_DEPENDS ${otsync_client_map})
# The version script keeps otsync_* alone; --exclude-libs keeps any static archive's symbols
# (otsync_shared, a static SQLite or libsodium) out as well. -z defs catches a dependency
# missing from the link, except under the sanitizers, whose runtime the executable brings.
target_link_options(otsync_client_shared PRIVATE
    LINKER:--version-script=${otsync_client_map}
    LINKER:--exclude-libs,ALL
    $<$<NOT:$<OR:$<BOOL:${OTSYNC_SANITIZE}>,$<BOOL:${OTSYNC_TSAN}>>>:LINKER:-z,defs>)
add_library(otsync::client ALIAS otsync_client_shared)

# The install: only the C API is public (client.hpp, crdt.hpp... stay in the repository).
install(TARGETS otsync_client_shared EXPORT otsync-clientTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT client NAMELINK_COMPONENT client)
install(FILES include/otsync/client.h ${otsync_client_gen_include}/otsync/version.h
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/otsync COMPONENT client)

set(otsync_client_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/otsync-client)
install(EXPORT otsync-clientTargets NAMESPACE otsync:: DESTINATION ${otsync_client_cmake_dir}
    COMPONENT client)
configure_package_config_file(otsync-clientConfig.cmake.in
    ${CMAKE_CURRENT_BINARY_DIR}/otsync-clientConfig.cmake
    INSTALL_DESTINATION ${otsync_client_cmake_dir})
# SameMajorVersion: SOVERSION is MAJOR, and a MAJOR bump is the only breaking one.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/otsync-clientConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/otsync-clientConfig.cmake
    ${CMAKE_CURRENT_BINARY_DIR}/otsync-clientConfigVersion.cmake
    DESTINATION ${otsync_client_cmake_dir} COMPONENT client)

# otsync-client.pc, relocatable: its prefix is ${pcfiledir} and the way up from
# LIBDIR/pkgconfig, so `cmake --install --prefix P` anywhere gives a working file.
file(RELATIVE_PATH OTSYNC_PC_TO_PREFIX /otsync-prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig
     /otsync-prefix)
string(REGEX REPLACE "/$" "" OTSYNC_PC_TO_PREFIX "${OTSYNC_PC_TO_PREFIX}")
configure_file(otsync-client.pc.in ${CMAKE_CURRENT_BINARY_DIR}/otsync-client.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/otsync-client.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT client)
