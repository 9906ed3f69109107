# libprism's sources, named once for its own build (CMakeLists.txt here) and
# for the fuzzers' instrumented copy (fuzz/CMakeLists.txt, which leaves out
# the dataset files): a new file goes into both by going here.
set(PRISM_LIB_SOURCES value.c status.c codec.c client.c submit.c pool.c courier.c task_ctx.c
  events.c borrow.c actor.c dag_graph.c dag.c dag_record.c dag_rendezvous.c dag_edge.c
  placement_group.c stores.c data.c data_iter.c)
