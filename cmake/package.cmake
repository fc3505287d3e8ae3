# What cgcore gives other projects: namespaced targets, shared libraries
# beside the archives, install rules, the CMake package, pkg-config files and
# the .deb (CPack).
#
# Targets (the same names in the build tree, for add_subdirectory() and
# FetchContent users, as in the installed package):
#
#   cgcore::core, ::controllers, ::fs, ::host   the C++ layers, static archives
#   cgcore::core_shared, ... ::host_shared      the same as shared libraries
#                                               (installed builds only)
#   cgcore::capi, cgcore::capi_static           the C API (capi/CMakeLists.txt)
#   cgcore::headers                             include paths and C++20
#
# The C++ layers default to archives: their ABI follows the C++ headers,
# which change between 0.x releases, so a program linked statically cannot
# be broken by an upgrade. Their shared libraries therefore carry the minor
# version in the SONAME (libcgcore_core.so.0.1); the C API's, whose ABI only
# grows, is libcgcore_capi.so.0 throughout 0.x.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(CGCORE_LAYERS core controllers fs)
if(TARGET cgcore_host)
  list(APPEND CGCORE_LAYERS host)
endif()
foreach(layer IN LISTS CGCORE_LAYERS)
  set_target_properties(cgcore_${layer} PROPERTIES EXPORT_NAME ${layer} POSITION_INDEPENDENT_CODE ON)
  add_library(cgcore::${layer} ALIAS cgcore_${layer})
endforeach()

if(NOT CGCORE_INSTALL)
  return()
endif()

# ---- shared libraries, linked from the archives' objects (compiled once)
find_package(Threads REQUIRED)
set(CGCORE_SHARED_TARGETS)
set(below "")
foreach(layer IN LISTS CGCORE_LAYERS)
  set(t cgcore_${layer}_shared)
  add_library(${t} SHARED $<TARGET_OBJECTS:cgcore_${layer}>)
  if(below STREQUAL "")
    target_link_libraries(${t} PUBLIC cgcore_headers Threads::Threads)
  else()
    target_link_libraries(${t} PUBLIC cgcore_${below}_shared)
  endif()
  set_target_properties(${t} PROPERTIES
    OUTPUT_NAME cgcore_${layer}
    EXPORT_NAME ${layer}_shared
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}
    # Each finds the layer below beside itself, in any prefix.
    INSTALL_RPATH "$ORIGIN")
  add_library(cgcore::${layer}_shared ALIAS ${t})
  list(APPEND CGCORE_SHARED_TARGETS ${t})
  set(below ${layer})
endforeach()

# ---- libraries and headers
set(CGCORE_LIBRARY_TARGETS cgcore_headers)
foreach(layer IN LISTS CGCORE_LAYERS)
  list(APPEND CGCORE_LIBRARY_TARGETS cgcore_${layer})
endforeach()
install(TARGETS ${CGCORE_LIBRARY_TARGETS} ${CGCORE_SHARED_TARGETS} cgcore_capi cgcore_capi_static
  EXPORT cgcoreTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

foreach(layer IN LISTS CGCORE_LAYERS)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${layer}/
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cgcore/${layer}
          FILES_MATCHING PATTERN "*.h")
endforeach()
install(FILES ${PROJECT_BINARY_DIR}/include/cgcore/version.h ${PROJECT_SOURCE_DIR}/capi/cgcore.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cgcore)

# ---- the CMake package: find_package(cgcore CONFIG)
set(CGCORE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/cgcore)
install(EXPORT cgcoreTargets NAMESPACE cgcore:: DESTINATION ${CGCORE_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/cgcoreConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cgcoreConfig.cmake
  INSTALL_DESTINATION ${CGCORE_CMAKE_DIR})
# 0.x: a request for 0.1 is met by 0.1.*, not by 0.2 (the C++ headers may
# change between minor releases).
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cgcoreConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cgcoreConfig.cmake ${PROJECT_BINARY_DIR}/cgcoreConfigVersion.cmake
        DESTINATION ${CGCORE_CMAKE_DIR})

# ---- pkg-config: cgcore (C++) and cgcore-capi (C). The files find their
# prefix from where they lie, so an installed tree can be moved.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(CGCORE_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(CGCORE_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH up "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" up "${up}")
  set(CGCORE_PC_PREFIX "\${pcfiledir}/${up}")
  set(CGCORE_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(CGCORE_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(CGCORE_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
foreach(pc cgcore cgcore-capi)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/${pc}.pc.in ${PROJECT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()

# ---- the tools
foreach(tool cgcorefs cgsh cgbench cgexec)
  if(TARGET ${tool})
    install(TARGETS ${tool} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

# ---- the .deb: cpack -G DEB in the build directory
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME cgcore)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_DESCRIPTION
    "cgcore: hierarchies of control groups, the cpuset, memory, pids, numtasks and memrlimit controllers and transactional migration, with the kernel's rules, formats and errnos. cgcorefs mounts it over the host's processes with FUSE; cgsh scripts it; the C and C++ libraries embed it.")
set(CPACK_PACKAGE_CONTACT "cgcore maintainers <cgcore@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
# Library dependencies come from dpkg-shlibdeps; fusermount3 from fuse3.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "fuse3")
# A shlibs file and the ldconfig trigger for the shared libraries.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
include(CPack)
