// Package handlers holds the jobs job-service runs, one file per job kind.
//
// A job is a kind of maintenance work on the chat platform (create partitions, check message
// sequences, collect unreferenced files, write the daily report, ...): one file here declares
// its kind, its config section (the handlers.<kind> keys, with defaults and validation), its
// arguments (a run's params, decoded and validated by the consumer before the handler sees
// them), its default run policy (schedule, timeout, shards, ...) and the handler, whose Run
// does one run of the job against the system it maintains and returns the run's result. The
// one table of jobs, Table, lists them with Define; NewRegistry builds every handler from the
// node's clients (Deps). Handlers never import the consumer or the ticker: they get a run and
// return an outcome. Example_writingAJob is a whole job in one file; docs/jobs.md describes
// each job of this package.
package handlers
