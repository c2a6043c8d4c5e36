# coil-bench smoke tests, included from tests/tools/CMakeLists.txt: short real
# runs against coil-echo and, when it was built, libuv's uv_echo peer (see
# bench_smoke.sh); a refused connection; bad arguments.
if(TARGET coil-bench AND TARGET coil-echo)
  set(_bench_smoke ${CMAKE_CURRENT_LIST_DIR}/bench_smoke.sh)
  add_test(NAME tools_bench_coil_echo
    COMMAND sh ${_bench_smoke} run $<TARGET_FILE:coil-bench> $<TARGET_FILE:coil-echo>)
  add_test(NAME tools_bench_refused
    COMMAND sh ${_bench_smoke} refused $<TARGET_FILE:coil-bench> $<TARGET_FILE:coil-echo>)
  add_test(NAME tools_bench_args
    COMMAND sh ${_bench_smoke} args $<TARGET_FILE:coil-bench>)
  set(_bench_tests tools_bench_coil_echo tools_bench_refused tools_bench_args)
  if(TARGET uv_echo)
    add_test(NAME tools_bench_uv_echo
      COMMAND sh ${_bench_smoke} run $<TARGET_FILE:coil-bench> $<TARGET_FILE:uv_echo>)
    list(APPEND _bench_tests tools_bench_uv_echo)
  else()
    message(STATUS "uv_echo not built: coil-bench is smoke-tested against coil-echo only")
  endif()
  set_tests_properties(${_bench_tests} PROPERTIES TIMEOUT 15)
endif()
