# The API reference served at /api/docs and the spec at /api/openapi.yaml,
# compiled into the GCS like the dashboard's files (embed_dashboard.cmake).
# The reference is rendered from openapi/gcs.yaml by `redocly build-docs`,
# the version pinned in tools/openapi (installed by scripts/bootstrap.sh),
# with its scripts inlined so that the page loads nothing from elsewhere.
# Without Node.js or that install the GCS embeds the spec only and
# /api/docs answers 404 docs_not_built (docs/api.md).
include(${CMAKE_CURRENT_LIST_DIR}/dashboard.cmake)

find_program(PRISM_NODE node)
find_program(PRISM_REDOCLY redocly PATHS ${PROJECT_SOURCE_DIR}/tools/openapi/node_modules/.bin
             NO_DEFAULT_PATH)
# Redocly's CLI runs on Node.js 20.19 or later (Debian bookworm's is 18).
set(PRISM_NODE_VERSION "")
if(PRISM_NODE)
  execute_process(COMMAND ${PRISM_NODE} --version OUTPUT_VARIABLE PRISM_NODE_VERSION
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  string(REGEX REPLACE "^v" "" PRISM_NODE_VERSION "${PRISM_NODE_VERSION}")
endif()

# Sets `out_var` to the generated source, made in the calling directory's build dir.
function(prism_gcs_apidocs_source out_var)
  set(spec ${PROJECT_SOURCE_DIR}/openapi/gcs.yaml)
  set(bin ${CMAKE_CURRENT_BINARY_DIR})
  # The spec under the name it is served by (the table's names are plain file names).
  configure_file(${spec} ${bin}/openapi.yaml COPYONLY)
  set(files ${bin}/openapi.yaml)
  if(PRISM_NODE AND PRISM_REDOCLY AND PRISM_NODE_VERSION VERSION_GREATER_EQUAL 20.19)
    add_custom_command(OUTPUT ${bin}/api-docs.html
      COMMAND ${CMAKE_COMMAND} -E env REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
              ${PRISM_REDOCLY} build-docs ${spec} --inlineBundle --title "Prism GCS API"
              -o ${bin}/api-docs.html
      DEPENDS ${spec}
      COMMENT "Rendering the API reference (redocly build-docs)" VERBATIM)
    list(APPEND files ${bin}/api-docs.html)
    message(STATUS "API reference: rendered by ${PRISM_REDOCLY}")
  else()
    message(STATUS "API reference: not rendered (it needs Node.js 20.19 or later, found "
                   "'${PRISM_NODE_VERSION}', and tools/openapi/node_modules: run "
                   "scripts/bootstrap.sh and reconfigure); /api/docs answers 404")
  endif()
  string(REPLACE ";" "|" joined "${files}")
  set(out ${bin}/gcs_apidocs_files.c)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DDASHBOARD_FILES=${joined} -DOUT=${out} -DTABLE=gcs_apidocs
            -DHEADER=gcs_apidocs.h -P ${PRISM_DASHBOARD_EMBED_SCRIPT}
    DEPENDS ${files} ${PRISM_DASHBOARD_EMBED_SCRIPT}
    COMMENT "Embedding the API reference" VERBATIM)
  set(${out_var} ${out} PARENT_SCOPE)
endfunction()
