// Package archive moves old monthly partitions of range-partitioned tables from Postgres to
// S3 and back: the mechanics of the partition_archive job (handlers/partitionarchive.go) and of
// `jobctl archive`.
//
// A partition moves in steps, each recorded in the partition_archives manifest before the next
// begins, so a node killed at any point resumes from the last completed step:
//
//	exporting  COPY (FORMAT csv, HEADER) TO STDOUT, gzip, multipart upload to the one object
//	           key fixed in the manifest row (re-exports overwrite that key, never another),
//	           with the table's columns as they are at that export
//	exported   rows, sizes and checksums of the stream recorded
//	verified   the object read back: its SHA-256, row count and content checksum match; its
//	           ETag recorded
//	detached   DETACH PARTITION (CONCURRENTLY when the parent has no DEFAULT partition)
//	dropped    the detached table's columns, rows and checksum and the object's size and ETag
//	           (HEAD) checked against the manifest, then dropped, in one transaction (or left
//	           detached, by config); any difference exports again
//
// One mover per partition: the whole move runs under a session advisory lock on the
// partition, and the DROP commits on that lock's connection.
//
// Memory is bounded by the multipart part size and the compressor's window, whatever the
// partition's size: nothing holds a whole partition.
package archive
