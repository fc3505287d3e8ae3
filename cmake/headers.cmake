# The include layout, the same in the build tree and in an install:
#
#   <cgcore/version.h>            generated from cmake/version.h.in
#   <cgcore/cgcore.h>             the C API (capi/cgcore.h)
#   <cgcore/core/engine.h> ...    the C++ headers of core/, controllers/, fs/,
#                                 host/
#
# The C++ headers name each other as "core/result.h" (as the whole tree
# does), so the directory holding core/, fs/, ... is on the include path too:
# the source root in the build tree, <includedir>/cgcore in an install. In the
# build tree <cgcore/core/...> resolves through symbolic links in
# <build>/include/cgcore, so that a project using cgcore through
# add_subdirectory() or FetchContent writes the same includes as one using
# the installed package.
include(GNUInstallDirs)

configure_file(${CMAKE_CURRENT_LIST_DIR}/version.h.in
               ${PROJECT_BINARY_DIR}/include/cgcore/version.h @ONLY)
foreach(dir core controllers fs host)
  file(CREATE_LINK ${PROJECT_SOURCE_DIR}/${dir} ${PROJECT_BINARY_DIR}/include/cgcore/${dir} SYMBOLIC)
endforeach()
file(CREATE_LINK ${PROJECT_SOURCE_DIR}/capi/cgcore.h ${PROJECT_BINARY_DIR}/include/cgcore/cgcore.h
     SYMBOLIC)

# Every C++ layer links this: its include paths and the language level its
# headers need (consumers of the installed targets get C++20 from here).
add_library(cgcore_headers INTERFACE)
add_library(cgcore::headers ALIAS cgcore_headers)
set_target_properties(cgcore_headers PROPERTIES EXPORT_NAME headers)
target_include_directories(cgcore_headers INTERFACE
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
  $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/cgcore>)
target_compile_features(cgcore_headers INTERFACE cxx_std_20)
