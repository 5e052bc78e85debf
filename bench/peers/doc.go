// Package peers measures job-service against the queues its users would pick instead, on the
// same local stack and in the same run: River (Postgres, riverpgxv5) and Asynq (Redis). It is
// a module of its own so that job-service itself never depends on its peers; it drives the
// real job-service node (the testnode of internal/chaos) through a replace of the parent
// module. Run it with `make bench-peers`; figures and their reading are in BENCHMARKS.md.
package peers
