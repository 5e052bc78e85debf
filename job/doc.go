// Package job says what a job is, for every part of job-service that handles one.
//
// A job is a kind of maintenance work with a name (its kind, such as "pg_partition"), a run
// policy (a Spec: cron schedule and time zone, timeout, attempts, overlap, shards, misfire)
// and a handler: a Handler[T] whose Run gets the run's message and its arguments of type T,
// decoded from the message's params (unknown fields refused) and validated before Run is
// called. A run is one execution of a job, named by its run key; it may be split into shards,
// one message each, that share the run key. A run is requested by a message on the job topic
// (an Envelope: job, run key, trigger, scheduled time, shard, params), whoever publishes it:
// the ticker for a schedule, jobctl or the admin API for a forced run, another service for an
// event. The consumer claims each run in the ledger, calls the handler and records what Run
// returned as the run's result, or its error; Retry and Discard say how a failure is treated.
//
// This package is that contract: the envelope and its validation (Decode, Encode,
// NewManualRun), the handler contract (Handler, Registry, Define, DecodeArgs), run policies
// (Spec) and the typed errors. It imports nothing of ours, so every other package can depend
// on it without the arrows running back.
package job
