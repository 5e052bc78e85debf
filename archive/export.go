package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/gzip"
	"github.com/minio/minio-go/v7"
)

// exportStats is what the export stream measured on the Postgres side.
type exportStats struct {
	Rows         int64
	RawBytes     int64
	Bytes        int64
	Checksum     string
	ObjectSHA256 string
	ETag         string // of the object read back (readBack only)
}

// countingHash counts and hashes what is written to it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// onceWriter calls fn before the first write (the test hook that pauses mid-export).
type onceWriter struct {
	w    io.Writer
	fn   func()
	done bool
}

func (o *onceWriter) Write(p []byte) (int, error) {
	if !o.done {
		o.done = true
		o.fn()
	}
	return o.w.Write(p)
}

func copyOutSQL(e *Entry) string {
	return fmt.Sprintf(`COPY %s (%s) TO STDOUT (FORMAT csv, HEADER true)`, e.ident(), columnList(e.Columns))
}

// export streams the partition into its object: COPY TO STDOUT -> row hasher and gzip ->
// SHA-256 -> multipart upload. Only one part is buffered at a time.
func (a *Archiver) export(ctx context.Context, e *Entry) (exportStats, error) {
	var st exportStats
	// A killed earlier attempt may have left a multipart upload open; its parts cost storage.
	if err := a.s3.RemoveIncompleteUpload(ctx, e.Bucket, e.ObjectKey); err != nil {
		return st, fmt.Errorf("remove incomplete upload of %s: %w", e.ObjectKey, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	rows := newRowHasher()
	obj := &countingHash{h: sha256.New()}
	copied := make(chan error, 1)
	var tagRows int64
	go func() {
		err := func() error {
			tx, err := a.db.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
			if err != nil {
				return fmt.Errorf("begin: %w", err)
			}
			defer tx.Rollback(ctx) //nolint:errcheck // read-only
			if err := pinSession(ctx, tx); err != nil {
				return err
			}
			gz, err := gzip.NewWriterLevel(io.MultiWriter(pw, obj), a.cfg.CompressionLevel)
			if err != nil {
				return err
			}
			var w io.Writer = io.MultiWriter(rows, gz)
			if a.hook != nil {
				w = &onceWriter{w: w, fn: func() { a.hook(ctx, StepExporting, e) }}
			}
			tag, err := tx.Conn().PgConn().CopyTo(ctx, w, copyOutSQL(e))
			if err != nil {
				return fmt.Errorf("copy %s out: %w", e.Name(), err)
			}
			tagRows = tag.RowsAffected()
			if err := gz.Close(); err != nil {
				return fmt.Errorf("compress: %w", err)
			}
			return nil
		}()
		pw.CloseWithError(err) // nil: the upload sees EOF
		copied <- err
	}()
	info, err := a.s3.PutObject(ctx, e.Bucket, e.ObjectKey, pr, -1, minio.PutObjectOptions{
		PartSize:    uint64(a.cfg.PartSizeMB) << 20,
		ContentType: "application/gzip",
		UserMetadata: map[string]string{
			"archive-table": e.ParentSchema + "." + e.ParentTable, "archive-partition": e.Partition,
			"archive-format": e.Format,
		},
	})
	if err != nil {
		cancel()
		pr.CloseWithError(err)
		if cerr := <-copied; cerr != nil && !errors.Is(cerr, context.Canceled) {
			err = fmt.Errorf("%w (export: %v)", err, cerr)
		}
		return st, fmt.Errorf("upload %s/%s: %w", e.Bucket, e.ObjectKey, err)
	}
	if err := <-copied; err != nil {
		return st, err
	}
	st = exportStats{Rows: rows.Rows(), RawBytes: rows.RawBytes(), Bytes: obj.n, Checksum: rows.Checksum(),
		ObjectSHA256: hex.EncodeToString(obj.h.Sum(nil))}
	if st.Rows != tagRows {
		return st, fmt.Errorf("export %s: postgres copied %d rows, the stream held %d", e.Name(), tagRows, st.Rows)
	}
	if info.Size != st.Bytes {
		return st, fmt.Errorf("upload %s: stored %d bytes of %d", e.ObjectKey, info.Size, st.Bytes)
	}
	return st, nil
}

// readBack reads the object and computes on it what export computed on the stream.
func (a *Archiver) readBack(ctx context.Context, e *Entry, sink io.Writer) (exportStats, error) {
	var st exportStats
	o, err := a.s3.GetObject(ctx, e.Bucket, e.ObjectKey, minio.GetObjectOptions{})
	if err != nil {
		return st, fmt.Errorf("get %s/%s: %w", e.Bucket, e.ObjectKey, err)
	}
	defer o.Close()
	obj := &countingHash{h: sha256.New()}
	gz, err := gzip.NewReader(io.TeeReader(o, obj))
	if err != nil {
		return st, fmt.Errorf("read %s/%s: %w", e.Bucket, e.ObjectKey, err)
	}
	rows := newRowHasher()
	w := io.Writer(rows)
	if sink != nil {
		w = io.MultiWriter(rows, sink)
	}
	if _, err := io.Copy(w, gz); err != nil {
		return st, fmt.Errorf("read %s/%s: %w", e.Bucket, e.ObjectKey, err)
	}
	// Drain what follows the gzip stream, so the object hash covers every byte.
	if _, err := io.Copy(io.Discard, io.TeeReader(o, obj)); err != nil {
		return st, fmt.Errorf("read %s/%s: %w", e.Bucket, e.ObjectKey, err)
	}
	// The ETag of the response the bytes came from: what the drop step's HEAD compares.
	info, err := o.Stat()
	if err != nil {
		return st, fmt.Errorf("stat %s/%s: %w", e.Bucket, e.ObjectKey, err)
	}
	return exportStats{Rows: rows.Rows(), RawBytes: rows.RawBytes(), Bytes: obj.n, Checksum: rows.Checksum(),
		ObjectSHA256: hex.EncodeToString(obj.h.Sum(nil)), ETag: info.ETag}, nil
}

// errMismatch: what was read does not match the manifest.
var errMismatch = errors.New("mismatch")

// compare lists every way got differs from what the manifest recorded.
func compare(e *Entry, got exportStats, withObject bool) error {
	var diffs []string
	if e.Rows == nil || *e.Rows != got.Rows {
		diffs = append(diffs, fmt.Sprintf("rows %d, manifest %v", got.Rows, deref(e.Rows)))
	}
	if e.ContentChecksum != got.Checksum {
		diffs = append(diffs, fmt.Sprintf("content checksum %s, manifest %s", got.Checksum, e.ContentChecksum))
	}
	if withObject {
		if e.Bytes == nil || *e.Bytes != got.Bytes {
			diffs = append(diffs, fmt.Sprintf("object bytes %d, manifest %v", got.Bytes, deref(e.Bytes)))
		}
		if e.ObjectSHA256 != got.ObjectSHA256 {
			diffs = append(diffs, fmt.Sprintf("object sha256 %s, manifest %s", got.ObjectSHA256, e.ObjectSHA256))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", errMismatch, strings.Join(diffs, "; "))
}

func deref(p *int64) any {
	if p == nil {
		return "none"
	}
	return *p
}

// Sidecar is the small JSON object stored next to each archive (<key>.manifest.json): enough
// to restore the file without the manifest table.
type Sidecar struct {
	Table           string   `json:"table"`
	Partition       string   `json:"partition"`
	KeyColumn       string   `json:"key_column"`
	KeyType         string   `json:"key_type"`
	RangeFrom       string   `json:"range_from"`
	RangeTo         string   `json:"range_to"`
	Columns         []column `json:"columns"`
	Format          string   `json:"format"`
	Rows            int64    `json:"rows"`
	Bytes           int64    `json:"bytes"`
	ContentChecksum string   `json:"content_checksum"`
	ObjectSHA256    string   `json:"object_sha256"`
	Restore         string   `json:"restore"`
}

func (a *Archiver) putSidecar(ctx context.Context, e *Entry) error {
	sc := Sidecar{Table: e.ParentSchema + "." + e.ParentTable, Partition: e.Partition, KeyColumn: e.KeyColumn,
		KeyType: e.KeyType, RangeFrom: e.RangeFrom, RangeTo: e.RangeTo, Columns: e.Columns, Format: e.Format,
		Rows: *e.Rows, Bytes: *e.Bytes, ContentChecksum: e.ContentChecksum, ObjectSHA256: e.ObjectSHA256,
		Restore: fmt.Sprintf("jobctl archive restore %s %s   (or: aws s3 cp s3://%s/%s - | gunzip | psql -c \"COPY %s (%s) FROM STDIN (FORMAT csv, HEADER true)\")",
			e.ParentTable, e.Partition, e.Bucket, e.ObjectKey, e.Partition, columnList(e.Columns)),
	}
	b, err := json.MarshalIndent(sc, "", "  ")
	if err != nil {
		return err
	}
	key := e.ObjectKey + ".manifest.json"
	if _, err := a.s3.PutObject(ctx, e.Bucket, key, strings.NewReader(string(b)), int64(len(b)),
		minio.PutObjectOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("put %s/%s: %w", e.Bucket, key, err)
	}
	return nil
}
