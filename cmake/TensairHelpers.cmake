# Helpers shared by the project's CMake files.

set(TENSAIR_MPIEXEC "${MPIEXEC_EXECUTABLE}")
if(NOT TENSAIR_MPIEXEC)
  set(TENSAIR_MPIEXEC mpirun)
endif()
# Oversubscribe: CI machines have 2 cores and tests use up to 3 ranks.
set(TENSAIR_MPIEXEC_FLAGS --oversubscribe)
# No binding of a rank to one core: a TensAIR rank runs several threads (operators, transport,
# checkpoint writer, LibTorch), and mpirun's default binding for np <= 2 puts them all on one core
# (on this machine it also stalled fsync for seconds: docs/fault-tolerance.md).
set(TENSAIR_TEST_ENV "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_MCA_hwloc_base_binding_policy=none")

# tensair_library(NAME SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...])
# One library per src/ folder; public headers live in include/tensair/, internal ones by the .cpp.
function(tensair_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} ${ARG_SOURCES})
  target_include_directories(${name}
    PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

# tensair_add_test(NAME SOURCES ... DEPS ... [RANKS 1 2 3] [LABELS ...] [TIMEOUT s])
# Always one ctest case NAME running the binary in-process (tests that take rank counts run
# them as LocalCluster ranks). With RANKS, also one case per rank count, NAME.np<N>, running
# the same binary under mpirun -np N: the same test bodies over real MPI.
function(tensair_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;RANKS;LABELS;ARGS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} tensair_testing GTest::gtest GTest::gmock)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND $<TARGET_FILE:${name}> ${ARG_ARGS})
  set_tests_properties(${name} PROPERTIES
    TIMEOUT ${ARG_TIMEOUT} LABELS "unit;${ARG_LABELS}" ENVIRONMENT "${TENSAIR_TEST_ENV}")
  if(ARG_RANKS)
    foreach(n IN LISTS ARG_RANKS)
      add_test(NAME ${name}.np${n}
        COMMAND ${TENSAIR_MPIEXEC} ${TENSAIR_MPIEXEC_FLAGS} -np ${n} $<TARGET_FILE:${name}> ${ARG_ARGS})
      set_tests_properties(${name}.np${n} PROPERTIES
        TIMEOUT ${ARG_TIMEOUT} LABELS "mpi;${ARG_LABELS}" ENVIRONMENT "${TENSAIR_TEST_ENV}"
        PROCESSORS ${n})
    endforeach()
  endif()
endfunction()
