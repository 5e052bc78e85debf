// Package filereap removes the files of the chat platform that their users deleted and nothing
// references: the object from S3, then the row, each file under a row lock that re-checks it is
// still collectable. Both collectors use it: the daily sweep (handlers.FileGC) and the
// event-driven GC (filegc).
package filereap
