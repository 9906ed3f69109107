# The dashboard's static files (dashboard/) compiled into the GCS: a generated
# C source holds each file's bytes, its name and an ETag (a hash of its bytes).
# No tool beyond CMake itself: embed_dashboard.cmake runs in script mode.
set(PRISM_DASHBOARD_EMBED_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/embed_dashboard.cmake)

# Sets `out_var` to the generated source, made in the calling directory's build dir.
function(prism_gcs_dashboard_source out_var)
  set(dir ${PROJECT_SOURCE_DIR}/dashboard)
  file(GLOB files CONFIGURE_DEPENDS ${dir}/*.html ${dir}/*.css ${dir}/*.js ${dir}/*.svg)
  list(SORT files)
  string(REPLACE ";" "|" joined "${files}")
  set(out ${CMAKE_CURRENT_BINARY_DIR}/gcs_dashboard_files.c)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DDASHBOARD_FILES=${joined} -DOUT=${out}
            -P ${PRISM_DASHBOARD_EMBED_SCRIPT}
    DEPENDS ${files} ${PRISM_DASHBOARD_EMBED_SCRIPT}
    COMMENT "Embedding the dashboard's files" VERBATIM)
  set(${out_var} ${out} PARENT_SCOPE)
endfunction()
