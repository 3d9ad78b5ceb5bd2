# cmake -DQUANTIZE=<moe-quantize> -DFIXTURE=<fixture folder> -DOUT=<out folder> -DTYPE=<type> -P convert_fixture.cmake
# Converts a model fixture to OUT/model-TYPE.gguf and copies its reference files beside it, so
# that `moe-conformance OUT/model-TYPE.gguf` checks the GGUF against the transformers reference.
file(MAKE_DIRECTORY "${OUT}")
execute_process(COMMAND "${QUANTIZE}" "${FIXTURE}" "${OUT}/model-${TYPE}.gguf" --type "${TYPE}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "moe-quantize exited with ${rc}")
endif()
file(COPY "${FIXTURE}/reference.json" "${FIXTURE}/reference.safetensors" DESTINATION "${OUT}")
